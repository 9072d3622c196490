"""Point-object metrics: precision, recall, F1 and AP at distance thresholds, and count_MAE.

A prediction (x, y, class, score) is a true positive at distance D when a one-to-one
matching of the image's predictions and ground-truth points of that class pairs it with a
point at most D px away. The matching is the maximum number of such pairs, ties broken by
the smallest total distance (`scipy.optimize.linear_sum_assignment` on the distances, pairs
farther than D priced above any sum of allowed ones), so a crowd of touching objects is not
penalised for the order in which its peaks are visited, as greedy matching would.

- precision@D = TP / (TP + FP), recall@D = TP / (TP + FN), F1@D = 2 P R / (P + R), counted over
  all images and classes, for the predictions with score > the decode threshold (F1 is
  2 TP / (n_pred + n_gt), 0 rather than NaN when only one side is empty);
- AP@D: the area under the precision-recall curve traced by raising the score threshold
  (precision made monotone, as VOC/COCO), the matching redone at each threshold;
- count_MAE: mean over images of |number of predictions - number of ground-truth points|
  (all classes together).
NaN where a ratio has nothing to count (precision without predictions, recall and AP
without ground truth).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_AP_THRESHOLDS = 50  # score thresholds of the AP sweep: every distinct score, or this many quantiles


def match_count(pred: np.ndarray, gt: np.ndarray, max_distance: float) -> int:
    """Number of one-to-one pairs within max_distance px of pred [P, 2] and gt [G, 2] points."""
    if len(pred) == 0 or len(gt) == 0:
        return 0
    from scipy.optimize import linear_sum_assignment

    distance = np.linalg.norm(pred[:, None, :] - gt[None, :, :], axis=-1)
    allowed = distance <= max_distance
    if not allowed.any():
        return 0
    # a disallowed pair costs more than all allowed pairs together: the matching maximises the count
    cost = np.where(allowed, distance, (max_distance + 1.0) * (min(distance.shape) + 1))
    rows, cols = linear_sum_assignment(cost)
    return int(allowed[rows, cols].sum())


def count_matches(predictions: Sequence[dict], targets: Sequence[dict], max_distance: float,
                  score_threshold: float) -> tuple[int, int, int]:
    """(TP, number of predictions, number of ground-truth points) over images and classes.

    predictions[i]: {"points" [P, 2], "scores" [P], "labels" [P]}; targets[i]: {"points" [G, 2],
    "labels" [G]}, image px, one entry per image. Predictions with score <= threshold are dropped."""
    tp = n_pred = n_gt = 0
    for pred, target in zip(predictions, targets):
        keep = pred["scores"] > score_threshold
        points, labels = pred["points"][keep], pred["labels"][keep]
        n_pred, n_gt = n_pred + len(points), n_gt + len(target["points"])
        for label in np.union1d(np.unique(labels), np.unique(target["labels"])):
            truth = target["points"][target["labels"] == label]
            tp += match_count(points[labels == label], truth, max_distance)
    return tp, n_pred, n_gt


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def precision_recall_f1(tp: int, n_pred: int, n_gt: int) -> tuple[float, float, float]:
    """F1 = 2 P R / (P + R) = 2 TP / (n_pred + n_gt): 0 when one side is empty, NaN when both are."""
    return _ratio(tp, n_pred), _ratio(tp, n_gt), _ratio(2 * tp, n_pred + n_gt)


def average_precision(predictions: Sequence[dict], targets: Sequence[dict], max_distance: float,
                      score_threshold: float) -> float:
    """Area under the monotone precision envelope against recall over score thresholds."""
    scores = np.concatenate([p["scores"] for p in predictions]) if predictions else np.zeros(0)
    scores = np.unique(scores[scores > score_threshold])
    if len(scores) > MAX_AP_THRESHOLDS:
        scores = np.unique(np.quantile(scores, np.linspace(0, 1, MAX_AP_THRESHOLDS)))
    curve = []
    for t in scores[::-1]:  # highest threshold first: recall grows
        tp, n_pred, n_gt = count_matches(predictions, targets, max_distance, np.nextafter(t, -np.inf))
        if n_gt == 0:
            return float("nan")
        curve.append((tp / n_gt, tp / max(n_pred, 1)))
    if sum(len(t["points"]) for t in targets) == 0:
        return float("nan")
    return area_under_envelope(np.array(curve).reshape(-1, 2))


def area_under_envelope(curve: np.ndarray) -> float:
    """curve [N, 2] of (recall, precision) -> sum over recall steps of the precision envelope
    (max precision at any recall >= r), starting at recall 0 (VOC 2010+/COCO, without sampling)."""
    if len(curve) == 0:
        return 0.0
    order = np.argsort(curve[:, 0], kind="stable")
    recall, precision = curve[order, 0], curve[order, 1]
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))


def count_mae(predictions: Sequence[dict], targets: Sequence[dict], score_threshold: float) -> float:
    errors = [abs(int((p["scores"] > score_threshold).sum()) - len(t["points"]))
              for p, t in zip(predictions, targets)]
    return float(np.mean(errors)) if errors else float("nan")


def point_metrics(predictions: Sequence[dict], targets: Sequence[dict], thresholds: Sequence[float] = (3, 6),
                  score_threshold: float = 0.1) -> dict[str, float]:
    """precision@D, recall@D, F1@D, AP@D for every D in thresholds, and count_MAE (module docstring).
    Keys use D as written ("F1@3" for 3 or 3.0)."""
    metrics = {}
    for d in thresholds:
        name = f"{float(d):g}"
        p, r, f1 = precision_recall_f1(*count_matches(predictions, targets, d, score_threshold))
        metrics.update({f"precision@{name}": p, f"recall@{name}": r, f"F1@{name}": f1,
                        f"AP@{name}": average_precision(predictions, targets, d, score_threshold)})
    metrics["count_MAE"] = count_mae(predictions, targets, score_threshold)
    return metrics
