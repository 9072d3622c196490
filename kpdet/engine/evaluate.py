"""Evaluation on ground-truth boxes: predict every instance, map to image px, compute the metrics."""
from __future__ import annotations

import numpy as np
import torch

from kpdet.engine import distributed
from kpdet.metrics import (
    W300_OUTER_EYE_CORNERS,
    WFLW_OUTER_EYE_CORNERS,
    attribute_metrics,
    bbox_longer_side,
    box_norm,
    coco_keypoint_eval,
    confidence_metrics,
    distance_metrics,
    format_rows,
    format_table,
    instance_score,
    interocular_norm,
    landmark_metrics,
    per_keypoint_table,
)
from kpdet.predict import HeatmapPredictor, crop_to_image

# Outer eye corners by keypoint count, for NME with eval.nme_norm=interocular.
EYE_CORNERS = {68: W300_OUTER_EYE_CORNERS, 98: WFLW_OUTER_EYE_CORNERS}


@torch.no_grad()
def predict_dataset(predictor: HeatmapPredictor, loader, device: torch.device) -> dict[str, np.ndarray]:
    """Arrays over instances: keypoints/confidences (image px), gt, bbox, image and annotation ids;
    with an attribute head and samples that carry "attribute", also attribute_probs [N, C] and
    attribute (the true classes) [N]."""
    predictor.model.eval()
    keys = ("keypoints", "confidences", "gt", "bbox", "image_id", "ann_id", "attribute_probs", "attribute")
    parts: dict[str, list] = {k: [] for k in keys}
    with AttributeTap(predictor.model) as tap:
        for batch in loader:
            _predict_batch(predictor, batch, device, tap, parts)
    local = {k: torch.cat(v).numpy() for k, v in parts.items() if v}
    return _merge_ranks(distributed.gather_objects(local))


def _predict_batch(predictor, batch: dict, device: torch.device, tap, parts: dict[str, list]) -> None:
    keypoints, confidences, _ = predictor(batch["image"].to(device, non_blocking=True))
    parts["keypoints"].append(crop_to_image(keypoints.cpu().double(), batch["crop_to_image"].double()))
    parts["confidences"].append(confidences.cpu())
    parts["gt"].append(batch["image_keypoints"])
    for key in ("bbox", "image_id", "ann_id"):
        parts[key].append(batch[key])
    probs = tap.pop_probs() if tap.active else None
    if probs is not None and "attribute" in batch:
        parts["attribute_probs"].append(probs)
        parts["attribute"].append(batch["attribute"])


class AttributeTap:
    """Reads the attribute head's logits out of the predictor's own forward passes (a forward hook
    on `model.attribute`), so that evaluating the attribute costs no extra pass through the trunk.
    `pop_probs()` -> softmax over classes [B, C] of the passes since the last call, averaged (two
    passes with flip testing: the class of an instance does not change when its crop is mirrored).
    Inactive (nothing recorded) for a model without an attribute head."""

    def __init__(self, model: torch.nn.Module):
        self.head = getattr(model, "attribute", None)
        self.active = self.head is not None
        self.outputs: list[torch.Tensor] = []

    def __enter__(self) -> AttributeTap:
        if self.active:
            self.handle = self.head.register_forward_hook(lambda _m, _i, out: self.outputs.append(out))
        return self

    def __exit__(self, *exc) -> None:
        if self.active:
            self.handle.remove()

    def pop_probs(self) -> torch.Tensor:
        probs = torch.stack([torch.softmax(z.float(), -1) for z in self.outputs]).mean(0).cpu()
        self.outputs = []
        return probs


def _merge_ranks(shards: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate every rank's predictions, drop the sampler's padding repeats and samples without an
    annotation (ann_id < 0), sort by annotation id."""
    merged = {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}
    real = merged["ann_id"] >= 0  # whole-frame negatives (images without an instance) have no ground truth
    merged = {k: v[real] for k, v in merged.items()}
    _, first = np.unique(merged["ann_id"], return_index=True)
    return {k: v[first] for k, v in merged.items()}


def coco_results(predictions: dict[str, np.ndarray], category_id: int) -> list[dict]:
    """COCO keypoint results, one per instance, scored by the mean confident keypoint score."""
    scores = instance_score(predictions["confidences"])
    return [
        {"image_id": int(i), "category_id": int(category_id), "score": float(s),
         "keypoints": np.concatenate([k, c[:, None]], axis=1).reshape(-1).tolist()}
        for i, k, c, s in zip(predictions["image_id"], predictions["keypoints"],
                              predictions["confidences"], scores)
    ]


def compute_metrics(predictions: dict[str, np.ndarray], coco, category_id: int, spec,
                    nme_norm: str = "none", nme_pair=None, attribute_permutation=None) -> dict[str, float]:
    """COCO OKS AP/AR (pycocotools); PCK@0.05/0.1/0.2 (norm: longer box side), EPE and RMSE
    (image px); per keypoint "PCK@0.1/<name>" and "EPE/<name>"; NME/AUC/FR when nme_norm is set;
    presence_AUROC and ECE (confidence quality, kpdet.metrics.confidence); attribute_MAE and
    attribute_accuracy (argmax class, kpdet.metrics.attribute) when predictions hold an attribute,
    in the true class order when the classes were relabelled by `attribute_permutation`."""
    keypoints, gt, bbox = predictions["keypoints"], predictions["gt"], predictions["bbox"]
    visible, pck_norm = gt[..., 2] > 0, bbox_longer_side(bbox)
    metrics = dict(coco_keypoint_eval(coco, coco_results(predictions, category_id), spec.sigmas))
    metrics.update(distance_metrics(keypoints, gt[..., :2], visible, pck_norm))
    metrics.update(confidence_metrics(keypoints, gt[..., :2], visible, pck_norm, predictions["confidences"]))
    if nme_norm != "none":
        norm = _nme_norm(nme_norm, nme_pair, gt, bbox, spec.num_keypoints)
        metrics.update(landmark_metrics(keypoints, gt[..., :2], visible, norm))
    if "attribute" in predictions:
        metrics.update(attribute_metrics(predictions["attribute_probs"], predictions["attribute"],
                                         attribute_permutation))
    for row in per_keypoint_table(keypoints, gt[..., :2], visible, pck_norm, spec.names, total=False):
        metrics[f"PCK@0.1/{row['name']}"], metrics[f"EPE/{row['name']}"] = row["PCK@0.1"], row["EPE"]
    return {k: float(v) for k, v in metrics.items()}


def _nme_norm(kind: str, pair, gt: np.ndarray, bbox: np.ndarray, num_keypoints: int) -> np.ndarray:
    if kind == "box":
        return box_norm(bbox)
    pair = pair or EYE_CORNERS.get(num_keypoints)
    if pair is None:
        raise ValueError(f"eval.nme_norm=interocular needs eval.nme_pair (outer eye corner indices) for "
                         f"{num_keypoints} keypoints; known defaults: 68 (300W), 98 (WFLW)")
    return interocular_norm(gt[..., :2], pair[0], pair[1])


def summary_table(metrics: dict[str, float]) -> str:
    """Printable table of the summary metrics (those without a per-keypoint "/<name>")."""
    return format_table({k: v for k, v in metrics.items() if "/" not in k})


def keypoint_table(metrics: dict[str, float]) -> str:
    """Printable table with one row per keypoint: PCK@0.1 and EPE (image px)."""
    names = [k.split("/", 1)[1] for k in metrics if k.startswith("EPE/")]
    return format_rows([{"keypoint": n, "PCK@0.1": metrics[f"PCK@0.1/{n}"], "EPE": metrics[f"EPE/{n}"]}
                        for n in names])


def evaluate(predictor: HeatmapPredictor, loader, dataset, device: torch.device,
             nme_norm: str = "none", nme_pair=None) -> dict[str, float]:
    predictions = predict_dataset(predictor, loader, device)
    return compute_metrics(predictions, dataset.coco, dataset.category_id, dataset.spec, nme_norm, nme_pair,
                           getattr(dataset, "attribute_permutation", None))
