"""Evaluation of point objects (data.bottom_up.task=points): peaks per class map -> point metrics."""
from __future__ import annotations

import numpy as np
import torch

from kpdet.codecs.instances import decode_points
from kpdet.engine import distributed
from kpdet.metrics.points import point_metrics
from kpdet.predict import OffsetPredictor, crop_to_image


@torch.no_grad()
def predict_points(predictor, loader, device: torch.device, max_peaks: int = 100, threshold: float = 0.1,
                   kernel: int = 3) -> tuple[list[dict], list[dict]]:
    """(predictions, targets), one dict of numpy arrays per image, image px: predictions
    {"points" [P, 2], "scores" [P], "labels" [P]}, targets {"points" [G, 2], "labels" [G]}.
    Peaks with score > threshold only (AP sweeps the threshold upwards from there)."""
    predictor.model.eval()
    predictions, targets, ids = [], [], []
    for batch in loader:
        images = batch["image"].to(device, non_blocking=True)
        if isinstance(predictor, OffsetPredictor):
            scores, offsets = predictor.heatmaps_and_offsets(images)
        else:
            scores, offsets = predictor.heatmaps(images), None
        found = decode_points(predictor.codec, scores, offsets, max_peaks, threshold, kernel)
        B, C, M, _ = found["points"].shape
        points = crop_to_image(found["points"].cpu().double().view(B, C * M, 2),
                               batch["crop_to_image"].double())
        labels = torch.arange(C)[None, :, None].expand(B, C, M).reshape(B, C * M)
        keep, values = found["keep"].cpu().view(B, C * M), found["scores"].cpu().view(B, C * M)
        for b in range(B):
            predictions.append({"points": points[b][keep[b]].numpy(), "scores": values[b][keep[b]].numpy(),
                                "labels": labels[b][keep[b]].numpy()})
            real = batch["labels"][b] >= 0
            targets.append({"points": batch["image_points"][b][real].numpy().astype(np.float64),
                            "labels": batch["labels"][b][real].numpy()})
        ids += batch["image_id"].tolist()
    return _merge(distributed.gather_objects((ids, predictions, targets)))


def _merge(shards: list) -> tuple[list[dict], list[dict]]:
    """Every rank's images once (the sampler pads shards with repeats), in image id order."""
    by_id = {}
    for ids, predictions, targets in shards:
        for i, p, t in zip(ids, predictions, targets):
            by_id.setdefault(i, (p, t))
    ordered = [by_id[i] for i in sorted(by_id)]
    return [p for p, _ in ordered], [t for _, t in ordered]


def evaluate_points(predictor, loader, device: torch.device, thresholds=(3, 6), max_peaks: int = 100,
                    threshold: float = 0.1, kernel: int = 3) -> dict[str, float]:
    """precision@D, recall@D, F1@D, AP@D and count_MAE (kpdet.metrics.points) over the loader."""
    predictions, targets = predict_points(predictor, loader, device, max_peaks, threshold, kernel)
    return point_metrics(predictions, targets, [float(d) for d in thresholds], threshold)
