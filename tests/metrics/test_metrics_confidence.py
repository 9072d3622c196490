"""presence AUROC and ECE: hand-worked cases, scipy's Mann-Whitney U, a loop ECE reference."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from kpdet.metrics import auroc, confidence_metrics, expected_calibration_error, presence_auroc
from kpdet.metrics.confidence import average_ranks


def test_average_ranks_share_ties():
    # sorted: 0.3 (rank 1), 0.8 0.8 (ranks 2, 3 -> 2.5 each), 0.9 (rank 4)
    assert average_ranks(np.array([0.9, 0.8, 0.8, 0.3])).tolist() == [4.0, 2.5, 2.5, 1.0]


def test_auroc_by_hand_with_a_tie():
    # positives 0.9, 0.8; negatives 0.8, 0.3. Pairs (pos, neg): (0.9, 0.8) 1, (0.9, 0.3) 1,
    # (0.8, 0.8) 1/2, (0.8, 0.3) 1 -> 3.5 / 4 = 0.875.
    # Ranks 4, 2.5, 2.5, 1: R_pos = 6.5, U = 6.5 - 2*3/2 = 3.5, U / (2*2) = 0.875.
    assert auroc([0.9, 0.8, 0.8, 0.3], [1, 1, 0, 0]) == pytest.approx(0.875)


def test_auroc_extremes_and_empty_classes():
    assert auroc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert auroc([0.5, 0.5, 0.5], [1, 0, 1]) == 0.5  # all tied: every pair counts 1/2
    assert math.isnan(auroc([0.5, 0.7], [1, 1]))  # no negative
    assert math.isnan(auroc([0.5, 0.7], [0, 0]))  # no positive
    assert math.isnan(auroc([0.5, float("nan")], [1, 0]))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_is_mann_whitney_u_over_the_pair_count(seed):
    rng = np.random.default_rng(seed)
    n = rng.integers(20, 300)
    positive = rng.random(n) < rng.uniform(0.1, 0.9)
    # rounding to 1/10 makes many ties, within and across the classes
    scores = np.round(rng.random(n) + 0.3 * positive, 1)
    u = mannwhitneyu(scores[positive], scores[~positive]).statistic
    expected = u / (positive.sum() * (~positive).sum())
    assert auroc(scores, positive) == pytest.approx(float(expected), rel=1e-12)


def test_presence_auroc_takes_v_and_torch():
    conf = torch.tensor([[0.9, 0.8], [0.8, 0.3]])
    v = torch.tensor([[2, 1], [0, 0]])  # v > 0 labelled; same numbers as the hand case: 0.875
    assert presence_auroc(conf, v) == pytest.approx(0.875)
    assert math.isnan(presence_auroc(conf, torch.ones(2, 2)))  # nothing unlabelled


def test_ece_by_hand_with_the_closed_last_bin():
    # 15 bins of width 1/15; bin = floor(15 c), c = 1.0 goes to the last bin [14/15, 1].
    #   c 0.05 -> 15c = 0.75 -> bin 0,  correct 0: gap 0 - 0.05 = -0.05
    #   c 0.1  -> 1.5        -> bin 1,  correct 1: gap 1 - 0.1  =  0.9
    #   c 0.5  -> 7.5        -> bin 7,  correct 1: gap 1 - 0.5  =  0.5
    #   c 0.95, 1.0, 1.0 -> 14.25, 15, 15 -> bin 14, correct 1, 1, 0: gap 2 - 2.95 = -0.95
    # ECE = sum_b (n_b/N) |acc_b - conf_b| = sum_b |gap_b| / N = (0.05 + 0.9 + 0.5 + 0.95) / 6 = 0.4
    # (bin 14 in the textbook form: 3/6 * |2/3 - 2.95/3| = 0.5 * 0.316667 = 0.158333)
    conf = [0.05, 0.1, 0.5, 0.95, 1.0, 1.0]
    correct = [False, True, True, True, True, False]
    assert expected_calibration_error(conf, correct) == pytest.approx(0.4)


def test_ece_clips_and_handles_empty():
    # clipped to 0.0 (bin 0, wrong) and 1.0 (bin 14, right): both perfectly calibrated -> 0
    assert expected_calibration_error([-0.2, 1.3], [False, True]) == 0.0
    assert math.isnan(expected_calibration_error([], []))
    assert math.isnan(expected_calibration_error([0.5, float("nan")], [True, False]))


def ece_loop(conf, correct, n_bins=15):
    """Textbook ECE with explicit bin edges: [lo, hi) per bin, the last one [lo, 1]."""
    conf = np.clip(conf, 0, 1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf >= lo) & ((conf < hi) if b < n_bins - 1 else (conf <= 1.0))
        if inside.any():
            total += inside.sum() / conf.size * abs(correct[inside].mean() - conf[inside].mean())
    return total


@pytest.mark.parametrize("seed", range(3))
def test_ece_matches_a_loop_reference(seed):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(-0.1, 1.1, 500)
    conf[:5] = 1.0
    correct = rng.random(500) < np.clip(conf, 0, 1) ** 2
    assert expected_calibration_error(conf, correct) == pytest.approx(ece_loop(conf, correct), rel=1e-12)


def test_confidence_metrics_use_the_pck_norm_and_labelled_keypoints():
    # The distance tests' case (tests/metrics/test_metrics_distance.py): at PCK@0.05 the radii
    # are 5 (sample 0, norm 100) and 2.5 (sample 1, norm 50);
    #   sample 0: d = 4 hit, 8 miss, 15 miss;  sample 1: d = 1 hit, 6 miss, k2 unlabelled (v = 0).
    gt = np.array([[[10, 10], [20, 10], [30, 10]], [[0, 0], [5, 5], [0, 0]]], dtype=float)
    pred = np.array([[[14, 10], [20, 18], [39, 22]], [[1, 0], [11, 5], [100, 100]]], dtype=float)
    vis = np.array([[2, 2, 1], [2, 1, 0]])
    conf = np.array([[0.9, 0.22, 0.12], [0.7, 0.62, 0.15]])
    # presence: labelled 0.9, 0.22, 0.12, 0.7, 0.62 against unlabelled 0.15: 4 of 5 above -> 0.8
    # ECE over the 5 labelled, each alone in its bin (15c = 13.5, 3.3, 1.8, 10.5, 9.3):
    #   |1 - 0.9| + |0 - 0.22| + |0 - 0.12| + |1 - 0.7| + |0 - 0.62| = 1.36, / 5 = 0.272
    got = confidence_metrics(pred, gt, vis, np.array([100.0, 50.0]), conf)
    assert got == pytest.approx({"presence_AUROC": 0.8, "ECE": 0.272})
