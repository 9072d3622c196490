"""Point metrics against hand-worked cases (kpdet.metrics.points)."""
import math

import numpy as np
import pytest

from kpdet.metrics.points import area_under_envelope, count_mae, match_count, point_metrics


def _pred(points, scores, labels=None):
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    labels = np.zeros(len(points), int) if labels is None else np.asarray(labels)
    return {"points": points, "scores": np.asarray(scores, dtype=float), "labels": labels}


def _gt(points, labels=None):
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    return {"points": points, "labels": np.zeros(len(points), int) if labels is None else np.asarray(labels)}


def test_one_to_one_matching_beats_greedy():
    # predictions A (1.1, 0), B (2.5, 0); ground truth P (2, 0), Q (0, 0); D = 1.2.
    # A-P 0.9, A-Q 1.1, B-P 0.5, B-Q 2.5 (too far). Greedy "nearest first" gives A-P and leaves B
    # alone (1 pair); the assignment pairs A-Q and B-P: 2 pairs.
    pred, gt = np.array([[1.1, 0], [2.5, 0]]), np.array([[2.0, 0], [0.0, 0]])
    assert match_count(pred, gt, 1.2) == 2
    assert match_count(pred, gt, 0.4) == 0  # nothing within 0.4
    assert match_count(pred[:0], gt, 5) == 0


def test_precision_recall_f1_count_by_hand():
    # image 1: 3 predictions, 2 matched within 3 px (0.5 and 2 px away), one 10 px off;
    # image 2: no prediction, 1 point. TP 2, predictions 3, points 3:
    # precision 2/3, recall 2/3, F1 2/3; count errors |3 - 2| = 1, |0 - 1| = 1 -> count_MAE 1.
    # A fourth prediction scores 0.05 <= the 0.1 threshold: dropped everywhere.
    predictions = [_pred([[10.5, 10], [20, 22], [40, 40], [10, 10]], [0.9, 0.8, 0.7, 0.05]), _pred([], [])]
    targets = [_gt([[10, 10], [20, 20]]), _gt([[5, 5]])]
    m = point_metrics(predictions, targets, thresholds=(3,), score_threshold=0.1)
    assert m["precision@3"] == pytest.approx(2 / 3)
    assert m["recall@3"] == pytest.approx(2 / 3)
    assert m["F1@3"] == pytest.approx(2 / 3)
    assert m["count_MAE"] == 1.0
    # at 1 px only the 0.5 px pair matches: P = R = 1/3
    assert point_metrics(predictions, targets, (1,), 0.1)["recall@1"] == pytest.approx(1 / 3)


def test_classes_do_not_match_each_other():
    predictions = [_pred([[10, 10]], [0.9], labels=[1])]
    targets = [_gt([[10, 10]], labels=[0])]
    m = point_metrics(predictions, targets, (3,), 0.1)
    assert m["precision@3"] == 0 and m["recall@3"] == 0 and m["F1@3"] == 0


def test_average_precision_by_hand():
    # scores 0.9 (true), 0.8 (false), 0.7 (true) against 2 points.
    # thresholds high to low: (R, P) = (1/2, 1), (1/2, 1/2), (1, 2/3).
    # Envelope: at R = 1/2 max(1, 1/2, 2/3) = 1; at R = 1: 2/3. AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    predictions = [_pred([[0, 0], [50, 50], [20, 20]], [0.9, 0.8, 0.7])]
    targets = [_gt([[0, 0], [20, 20]])]
    assert point_metrics(predictions, targets, (3,), 0.1)["AP@3"] == pytest.approx(5 / 6)
    assert area_under_envelope(np.array([[0.5, 1.0], [0.5, 0.5], [1.0, 2 / 3]])) == pytest.approx(5 / 6)


def test_keys_and_empty_cases():
    m = point_metrics([_pred([], [])], [_gt([])], thresholds=(3, 6))
    assert set(m) == {"precision@3", "recall@3", "F1@3", "AP@3", "precision@6", "recall@6", "F1@6", "AP@6",
                      "count_MAE"}
    assert math.isnan(m["precision@3"]) and math.isnan(m["F1@3"]) and m["count_MAE"] == 0
    assert count_mae([_pred([[1, 1]], [0.5])], [_gt([])], 0.1) == 1
