"""Does the keypoint confidence mean anything? Presence AUROC and calibration (ECE).

Shapes as in `distance`: confidences and visible [N, K] (v of the COCO triplet, > 0 means
labelled), pred and gt [N, K, 2] (image px), norm [N] (px). numpy or torch inputs; Python
floats out.

- `auroc`: area under the ROC curve as the Mann-Whitney U statistic, ties counting 1/2.
- `presence_auroc`: how well confidence ranks labelled (v > 0) above unlabelled (v = 0)
  keypoints.
- `expected_calibration_error`: ECE of a confidence against a binary "correct" event
  (Naeini et al. 2015; Guo et al., On Calibration of Modern Neural Networks, ICML 2017).
- `confidence_metrics`: both, for metrics.json, with "correct" = within PCK@0.05.
"""
from __future__ import annotations

import math

import numpy as np

from kpdet.metrics.distance import as_numpy, pck_hits

ECE_BINS = 15
ECE_PCK_THRESHOLD = 0.05


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array; a run of equal values all get the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], x.size]
    ranks = np.empty(x.size)
    # sorted positions starts..ends-1 hold ranks starts+1..ends, whose mean is (starts + 1 + ends) / 2
    ranks[order] = np.repeat((starts + 1 + ends) / 2, ends - starts)
    return ranks


def auroc(scores, positive) -> float:
    """P(score of a random positive > score of a random negative) + P(equal) / 2.

        AUROC = U / (n_pos n_neg),  U = R_pos - n_pos (n_pos + 1) / 2
    with R_pos the sum of the positives' average ranks among all scores (Mann-Whitney U of the
    positives; equal to the trapezoidal area under the ROC curve). NaN when either class is
    empty or a score is NaN.
    """
    scores, positive = as_numpy(scores).ravel(), as_numpy(positive).ravel() > 0
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0 or np.isnan(scores).any():
        return math.nan
    u = average_ranks(scores)[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def presence_auroc(confidences, visible) -> float:
    """AUROC of confidence [N, K] separating labelled (v > 0) from unlabelled (v = 0) keypoints,
    pooled over all instances and keypoints. 0.5 = chance; NaN when no keypoint is unlabelled."""
    return auroc(confidences, as_numpy(visible) > 0)


def expected_calibration_error(confidences, correct, n_bins: int = ECE_BINS) -> float:
    """ECE = sum_b (n_b / N) |acc_b - conf_b| = (1/N) sum_b |sum_{i in b} (correct_i - c_i)|.

    c = confidence clipped to [0, 1]; n_bins equal-width bins, bin b = [b/n_bins, (b+1)/n_bins)
    (index floor(n_bins c)), except the last, [1 - 1/n_bins, 1], which is closed and holds
    c = 1.0. acc_b and conf_b are the mean of `correct` (bool) and of c in bin b; empty bins
    add nothing. Inputs of any shape, taken element-wise; NaN when empty or a confidence is NaN.
    """
    conf = np.clip(as_numpy(confidences).ravel(), 0.0, 1.0)
    correct = as_numpy(correct).ravel()
    if conf.size == 0 or np.isnan(conf).any():
        return math.nan
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    gap = np.bincount(bins, weights=correct - conf, minlength=n_bins)
    return float(np.abs(gap).sum() / conf.size)


def confidence_metrics(pred, gt, visible, norm, confidences,
                       threshold: float = ECE_PCK_THRESHOLD) -> dict[str, float]:
    """{"presence_AUROC", "ECE"} for metrics.json.

    ECE runs over the keypoints PCK scores (labelled, finite gt, norm > 0) with correct =
    ||pred - gt|| <= threshold * norm (PCK@0.05 by default, norm the longer box side).
    """
    hit, scored = pck_hits(pred, gt, visible, norm, threshold)
    conf = as_numpy(confidences)
    return {"presence_AUROC": presence_auroc(conf, visible),
            "ECE": expected_calibration_error(conf[scored], hit[scored])}
