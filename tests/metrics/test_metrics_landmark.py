"""NME / AUC / FR against hand-computed tiny cases."""
import math

import numpy as np
import pytest
import torch

from kpdet.metrics import (
    box_norm,
    failure_rate,
    interocular_norm,
    landmark_box,
    landmark_metrics,
    nme,
    nme_auc,
)

# Two faces, 4 landmarks; keypoints 0 and 1 are the outer eye corners.
GT = np.array([[[0, 0], [100, 0], [50, 50], [50, 80]],
               [[0, 0], [0, 50], [20, 20], [30, 30]]], dtype=float)
ERR = np.array([[[2, 0], [0, 4], [6, 0], [0, 0]],   # distances 2, 4, 6, 0
                [[3, 4], [0, 5], [6, 8], [99, 0]]], dtype=float)  # 5, 5, 10, (invisible)
VIS = np.array([[1, 1, 1, 1], [1, 1, 1, 0]])
PRED = GT + ERR
# inter-ocular: 100 and 50.
# NME_0 = (2 + 4 + 6 + 0) / 4 / 100 = 0.03; NME_1 = (5 + 5 + 10) / 3 / 50 = 0.13333


def test_interocular_and_box_norms():
    assert interocular_norm(GT, 0, 1) == pytest.approx([100, 50])
    assert box_norm([[0, 0, 40, 90]]) == pytest.approx([60])  # sqrt(40 * 90) = sqrt(3600)
    # labelled landmarks of sample 1: x in {0, 0, 20}, y in {0, 50, 20} -> box (0, 0, 20, 50)
    assert landmark_box(GT, VIS)[1] == pytest.approx([0, 0, 20, 50])


def test_nme_per_sample_excludes_invisible():
    values = nme(PRED, GT, VIS, interocular_norm(GT, 0, 1))
    assert values == pytest.approx([0.03, 20 / 3 / 50])
    assert nme(torch.tensor(PRED), torch.tensor(GT), torch.tensor(VIS), [100, 50]) == pytest.approx(values)


def test_nme_nan_for_bad_samples():
    values = nme(PRED, GT, [[0, 0, 0, 0], [1, 1, 1, 0]], [100, 0])
    assert np.isnan(values).all()  # no labelled landmark / zero normaliser


def test_auc_exact_and_on_the_literature_grid():
    values = np.array([0.02, 0.05, 0.12])
    # exact: AUC@T = mean max(0, 1 - e/T)
    # T = 0.1: (0.8 + 0.5 + 0) / 3 = 0.43333; T = 0.08: (0.75 + 0.375 + 0) / 3 = 0.375
    assert nme_auc(values, 0.1, step=None) == pytest.approx(1.3 / 3)
    assert nme_auc(values, 0.08, step=None) == pytest.approx(0.375)
    # coarse grid x = 0, 0.05, 0.1: CED = 0, 2/3, 2/3 (0.02 and 0.05 are <= 0.05)
    # trapezoid: 0.05 * (0 + 2/3) / 2 + 0.05 * (2/3 + 2/3) / 2 = 0.05 -> / 0.1 = 0.5
    assert nme_auc(values, 0.1, step=0.05) == pytest.approx(0.5)
    # the literature's step 1e-4 approaches the exact integral within O(step / T)
    assert nme_auc(values, 0.1) == pytest.approx(1.3 / 3, abs=1e-3)


def test_failure_rate():
    values = np.array([0.02, 0.05, 0.12, 0.08, np.nan])  # NaN sample dropped -> 4 samples
    assert failure_rate(values, 0.1) == pytest.approx(1 / 4)  # 0.12
    assert failure_rate(values, 0.08) == pytest.approx(1 / 4)  # 0.08 itself is not a failure
    assert failure_rate(values, 0.04) == pytest.approx(3 / 4)


def test_landmark_metrics_keys_and_values():
    out = landmark_metrics(PRED, GT, VIS, [100, 50], step=None)
    assert list(out) == ["NME", "AUC@0.08", "AUC@0.1", "FR@0.08", "FR@0.1"]
    # NME = (0.03 + 0.13333) / 2; AUC@0.1 = (1 - 0.3 + 0) / 2 = 0.35; AUC@0.08 = (1 - 0.375) / 2
    assert out["NME"] == pytest.approx((0.03 + 20 / 150) / 2)
    assert out["AUC@0.1"] == pytest.approx(0.35)
    assert out["AUC@0.08"] == pytest.approx(0.3125)
    assert out["FR@0.1"] == pytest.approx(0.5) and out["FR@0.08"] == pytest.approx(0.5)
    assert math.isnan(landmark_metrics(PRED, GT, np.zeros_like(VIS), [100, 50])["NME"])
