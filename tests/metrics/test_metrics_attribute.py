"""attribute_MAE and attribute_accuracy (kpdet.metrics.attribute) on hand-worked cases."""
import math

import numpy as np
import pytest
import torch

from kpdet.metrics import attribute_metrics


def test_hand_worked_case():
    # 4 classes, 5 instances. argmax of each row: 0, 3, 1, 2, 1; truth: 0, 1, 1, 0, 3
    # |errors| = 0, 2, 0, 2, 2 -> MAE = 6 / 5 = 1.2; hits 2 of 5 -> accuracy 0.4
    probs = [[0.7, 0.1, 0.1, 0.1],
             [0.1, 0.2, 0.3, 0.4],
             [0.2, 0.5, 0.2, 0.1],
             [0.3, 0.0, 0.6, 0.1],
             [0.1, 0.4, 0.3, 0.2]]
    metrics = attribute_metrics(probs, [0, 1, 1, 0, 3])
    assert metrics == {"attribute_MAE": pytest.approx(1.2), "attribute_accuracy": pytest.approx(0.4)}


def test_mae_counts_classes_apart_not_just_misses():
    # the same accuracy (0), but one class off costs 1 and three classes off cost 3
    near = attribute_metrics(np.eye(4)[[1]], [0])
    far = attribute_metrics(np.eye(4)[[3]], [0])
    assert near == {"attribute_MAE": 1.0, "attribute_accuracy": 0.0}
    assert far == {"attribute_MAE": 3.0, "attribute_accuracy": 0.0}


def test_torch_logits_a_tie_and_empty():
    # logits work as well as probabilities (argmax only); a tie picks the lower class: row 0 -> 1
    logits = torch.tensor([[-1.0, 2.0, 2.0], [0.0, -3.0, 5.0]])
    assert attribute_metrics(logits, torch.tensor([2, 2])) == {"attribute_MAE": pytest.approx(0.5),
                                                                "attribute_accuracy": pytest.approx(0.5)}
    empty = attribute_metrics(np.zeros((0, 3)), np.zeros(0))
    assert math.isnan(empty["attribute_MAE"]) and math.isnan(empty["attribute_accuracy"])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        attribute_metrics(np.zeros((3, 4)), [0, 1])


def test_permuted_classes_are_measured_in_the_true_order():
    # permutation [2, 0, 3, 1]: true class c is model class permutation[c], so model class m is true
    # class inverse[m] with inverse = [1, 3, 0, 2].  Model argmax 2 -> true 0; label 1 -> true 3: 3 apart.
    # Model argmax 0 -> true 1; label 3 -> true 2: 1 apart.  MAE (3 + 1) / 2 = 2; in the model's own
    # labels it would read (|2 - 1| + |0 - 3|) / 2 = 2 as well by chance, so a third row tells them
    # apart: model argmax 1 (true 3), label 2 (true 0): 3 apart (model labels: 1 apart).
    probs = np.eye(4)[[2, 0, 1]]
    true = attribute_metrics(probs, [1, 3, 2], permutation=[2, 0, 3, 1])
    assert true == {"attribute_MAE": pytest.approx(7 / 3), "attribute_accuracy": 0.0}
    assert attribute_metrics(probs, [1, 3, 2])["attribute_MAE"] == pytest.approx(5 / 3)
    # the same predictions and labels written in the true order give the same figures
    assert attribute_metrics(np.eye(4)[[0, 1, 3]], [3, 2, 0]) == true


def test_ground_distance_spearman_reads_the_matrix_in_the_true_order():
    from kpdet.metrics import ground_distance_spearman

    line = np.abs(np.subtract.outer(np.arange(4), np.arange(4))).astype(float)
    assert ground_distance_spearman(line) == pytest.approx(1.0)
    permutation = [2, 0, 3, 1]  # D over model classes: D[perm[a], perm[b]] = |a - b|
    hidden = np.zeros((4, 4))
    hidden[np.ix_(permutation, permutation)] = line
    assert ground_distance_spearman(hidden, permutation) == pytest.approx(1.0)
    assert ground_distance_spearman(hidden) < 0.5  # read in the model's labels it is no order
