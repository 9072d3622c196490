"""Evaluation on ground-truth boxes: predict every instance, map to image px, compute the metrics."""
from __future__ import annotations

import numpy as np
import torch

from kpdet.engine import distributed
from kpdet.metrics import coco_keypoint_eval, epe, instance_score, pck
from kpdet.predict import HeatmapPredictor, crop_to_image


@torch.no_grad()
def predict_dataset(predictor: HeatmapPredictor, loader, device: torch.device) -> dict[str, np.ndarray]:
    """Arrays over instances: keypoints/confidences (image px), gt, bbox, image and annotation ids."""
    predictor.model.eval()
    parts: dict[str, list] = {k: [] for k in ("keypoints", "confidences", "gt", "bbox", "image_id", "ann_id")}
    for batch in loader:
        keypoints, confidences, _ = predictor(batch["image"].to(device, non_blocking=True))
        parts["keypoints"].append(crop_to_image(keypoints.cpu().double(), batch["crop_to_image"].double()))
        parts["confidences"].append(confidences.cpu())
        parts["gt"].append(batch["image_keypoints"])
        for key in ("bbox", "image_id", "ann_id"):
            parts[key].append(batch[key])
    local = {k: torch.cat(v).numpy() for k, v in parts.items()}
    return _merge_ranks(distributed.gather_objects(local))


def _merge_ranks(shards: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate every rank's predictions, drop the sampler's padding repeats, sort by annotation id."""
    merged = {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}
    _, first = np.unique(merged["ann_id"], return_index=True)
    return {k: v[first] for k, v in merged.items()}


def compute_metrics(predictions: dict[str, np.ndarray], coco, category_id: int, sigmas) -> dict[str, float]:
    """COCO OKS AP/AR (pycocotools), PCK@0.05/0.1/0.2 (norm: longer box side) and EPE (image px)."""
    keypoints, confidences = predictions["keypoints"], predictions["confidences"]
    gt, bbox = predictions["gt"], predictions["bbox"]
    scores = instance_score(confidences)
    results = [
        {"image_id": int(i), "category_id": int(category_id), "score": float(s),
         "keypoints": np.concatenate([k, c[:, None]], axis=1).reshape(-1).tolist()}
        for i, k, c, s in zip(predictions["image_id"], keypoints, confidences, scores)
    ]
    visible = gt[..., 2] > 0
    metrics = dict(coco_keypoint_eval(coco, results, sigmas))
    metrics.update(pck(keypoints, gt[..., :2], visible, bbox[:, 2:].max(axis=1)))
    metrics["EPE"] = float(epe(keypoints, gt[..., :2], visible))
    return {k: float(v) for k, v in metrics.items()}


def evaluate(predictor: HeatmapPredictor, loader, dataset, device: torch.device) -> dict[str, float]:
    predictions = predict_dataset(predictor, loader, device)
    return compute_metrics(predictions, dataset.coco, dataset.category_id, dataset.spec.sigmas)
