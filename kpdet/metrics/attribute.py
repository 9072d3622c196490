"""Per-instance ordinal attribute (model.attribute): how far the predicted class lands from the truth.

probs [N, C] (class probabilities, or logits: only the argmax is used), target [N] integer classes
0..C-1, ordered. numpy or torch inputs; Python floats out.

    attribute_MAE      = (1/N) sum_n |argmax_c probs[n, c] - target[n]|   (classes apart, argmax class)
    attribute_accuracy = (1/N) sum_n [argmax_c probs[n, c] == target[n]]

MAE charges a prediction by how many classes it is off, as the squared EMD loss does; a tie in
probs picks the lowest class (numpy's argmax). No instance -> NaN.
"""
from __future__ import annotations

import numpy as np

from kpdet.metrics.distance import as_numpy


def attribute_metrics(probs, target) -> dict[str, float]:
    """{"attribute_MAE", "attribute_accuracy"} of the argmax class of probs [N, C] against target [N]."""
    probs, target = as_numpy(probs), as_numpy(target).astype(np.int64)
    if probs.ndim != 2 or target.shape != probs.shape[:1]:
        raise ValueError(f"probs must be [N, C] and target [N], got {probs.shape} and {target.shape}")
    if len(target) == 0:
        return {"attribute_MAE": float("nan"), "attribute_accuracy": float("nan")}
    predicted = probs.argmax(axis=1)
    return {"attribute_MAE": float(np.abs(predicted - target).mean()),
            "attribute_accuracy": float((predicted == target).mean())}
