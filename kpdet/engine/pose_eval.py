"""Evaluation of bottom-up multi-instance pose (data.bottom_up.task=pose): every instance found in the
whole image -> COCO OKS AP (pycocotools) over all images, and PCK/EPE of the instances matched to the
ground truth one-to-one by OKS."""
from __future__ import annotations

import numpy as np
import torch

from kpdet.engine import distributed
from kpdet.metrics import bbox_longer_side, coco_keypoint_eval, distance_metrics
from kpdet.predict import crop_to_image


@torch.no_grad()
def predict_pose(predictor, loader, device: torch.device, category_id: int) -> tuple[list[dict], list[int]]:
    """(COCO keypoint results in image px, one per instance with centre score > threshold; image ids)."""
    predictor.model.eval()
    results, ids = [], []
    for batch in loader:
        found = predictor(batch["image"].to(device, non_blocking=True))
        B, N, K, _ = found["keypoints"].shape
        points = crop_to_image(found["keypoints"].cpu().double().reshape(B, N * K, 2),
                               batch["crop_to_image"].double()).view(B, N, K, 2).numpy()
        scores, instance, keep = (found[k].cpu().numpy() for k in ("scores", "instance_scores", "keep"))
        for b, image_id in enumerate(batch["image_id"].tolist()):
            for n in np.flatnonzero(keep[b]):
                triples = np.concatenate([points[b, n], scores[b, n][:, None]], 1)
                results.append({"image_id": image_id, "category_id": int(category_id),
                                "keypoints": triples.reshape(-1).tolist(), "score": float(instance[b, n])})
        ids += batch["image_id"].tolist()
    shards = distributed.gather_objects((ids, results))
    seen, merged = set(), []
    for shard_ids, shard_results in shards:  # the sampler's padding repeats images: keep each once
        fresh = set(shard_ids) - seen
        merged += [r for r in shard_results if r["image_id"] in fresh]
        seen |= fresh
    return merged, sorted(seen)


def oks(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, area: float, sigmas: np.ndarray) -> float:
    """COCO object keypoint similarity: mean over labelled k of exp(-d_k^2 / (2 area (2 sigma_k)^2))."""
    if not visible.any():
        return 0.0
    d2 = ((pred - gt) ** 2).sum(-1)
    return float(np.exp(-d2 / (2 * max(area, 1e-9) * (2 * sigmas) ** 2))[visible].mean())


def matched_instances(results: list[dict], coco, category_id: int, sigmas) -> dict[str, np.ndarray]:
    """One-to-one OKS matching (linear_sum_assignment) per image of the non-crowd ground truth with
    labelled keypoints and the predictions -> arrays of the matched pairs: keypoints [P, K, 2],
    gt [P, K, 3], bbox [P, 4]; plus the number of ground-truth instances."""
    from scipy.optimize import linear_sum_assignment

    sigmas = np.asarray(sigmas, dtype=np.float64)
    by_image: dict[int, list] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(np.asarray(r["keypoints"]).reshape(-1, 3)[:, :2])
    pairs = {"keypoints": [], "gt": [], "bbox": []}
    total = 0
    for image_id in coco.getImgIds():
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id, catIds=[category_id], iscrowd=False))
                if np.any(np.asarray(a["keypoints"])[2::3] > 0)]
        total += len(anns)
        preds = by_image.get(image_id, [])
        if not anns or not preds:
            continue
        gts = [np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3) for a in anns]
        similarity = np.array([[oks(p, g[:, :2], g[:, 2] > 0, a.get("area") or 1.0, sigmas) for p in preds]
                               for g, a in zip(gts, anns)])
        rows, cols = linear_sum_assignment(-similarity)
        for r, c in zip(rows, cols):
            pairs["keypoints"].append(preds[c])
            pairs["gt"].append(gts[r])
            pairs["bbox"].append(anns[r].get("bbox") or [0, 0, 1, 1])
    out = {k: np.asarray(v, dtype=np.float64) for k, v in pairs.items()}
    out["num_gt"] = np.asarray(total)
    return out


def evaluate_pose(predictor, loader, dataset, device: torch.device) -> dict[str, float]:
    """AP/AR (COCO OKS, every image counted, also those where nothing was found); PCK@t, EPE and RMSE
    over the matched instances; `matched_fraction` = matched / ground-truth instances."""
    results, image_ids = predict_pose(predictor, loader, device, dataset.category_id)
    metrics = dict(coco_keypoint_eval(dataset.coco, results, dataset.spec.sigmas, image_ids))
    matched = matched_instances(results, dataset.coco, dataset.category_id, dataset.spec.sigmas)
    if len(matched["gt"]):
        gt = matched["gt"]
        metrics.update(distance_metrics(matched["keypoints"], gt[..., :2], gt[..., 2] > 0,
                                        bbox_longer_side(matched["bbox"])))
    metrics["matched_fraction"] = len(matched["gt"]) / max(int(matched["num_gt"]), 1)
    return {k: float(v) for k, v in metrics.items()}
