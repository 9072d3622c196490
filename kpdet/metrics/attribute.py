"""Per-instance ordinal attribute (model.attribute): how far the predicted class lands from the truth.

probs [N, C] (class probabilities, or logits: only the argmax is used), target [N] integer classes
0..C-1, ordered. numpy or torch inputs; Python floats out.

    attribute_MAE      = (1/N) sum_n |argmax_c probs[n, c] - target[n]|   (classes apart, argmax class)
    attribute_accuracy = (1/N) sum_n [argmax_c probs[n, c] == target[n]]

MAE charges a prediction by how many classes it is off, as the squared EMD loss does; a tie in
probs picks the lowest class (numpy's argmax). No instance -> NaN.

With `permutation` (model.attribute.class_permutation: the model's class for true class c is
permutation[c]) both are measured in the TRUE order: probs are reordered to true classes,
probs_true[:, c] = probs[:, permutation[c]], and targets mapped back, t_true = inverse[t].

`ground_distance_spearman(D, permutation)`: Spearman's rank correlation between a C x C ground
distance over the model's classes and |i - j| in the true order, over the C (C - 1) / 2 pairs
i < j (ties get average ranks): 1 when D ranks the class pairs as the order does.
"""
from __future__ import annotations

import numpy as np

from kpdet.metrics.distance import as_numpy


def attribute_metrics(probs, target, permutation=None) -> dict[str, float]:
    """{"attribute_MAE", "attribute_accuracy"} of the argmax class of probs [N, C] against target [N]
    (in the true order when the model's classes are `permutation` of it)."""
    probs, target = as_numpy(probs), as_numpy(target).astype(np.int64)
    if probs.ndim != 2 or target.shape != probs.shape[:1]:
        raise ValueError(f"probs must be [N, C] and target [N], got {probs.shape} and {target.shape}")
    if permutation is not None:
        permutation = np.asarray(permutation, dtype=np.int64)
        probs, target = probs[:, permutation], np.argsort(permutation)[target]
    if len(target) == 0:
        return {"attribute_MAE": float("nan"), "attribute_accuracy": float("nan")}
    predicted = probs.argmax(axis=1)
    return {"attribute_MAE": float(np.abs(predicted - target).mean()),
            "attribute_accuracy": float((predicted == target).mean())}


def ground_distance_spearman(matrix, permutation=None) -> float:
    """Spearman correlation of a ground distance [C, C] (model classes) with |i - j| (true order)."""
    from scipy.stats import spearmanr

    matrix = as_numpy(matrix).astype(np.float64)
    C = matrix.shape[0]
    order = np.asarray(permutation if permutation is not None else range(C), dtype=np.int64)
    true_order = matrix[np.ix_(order, order)]  # [a, b] = D between the model classes of true a and b
    i, j = np.triu_indices(C, 1)
    return float(spearmanr(true_order[i, j], np.abs(i - j)).statistic)
