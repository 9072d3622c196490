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
