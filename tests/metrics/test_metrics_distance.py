"""PCK / EPE / RMSE / per-keypoint tables on a tiny hand-computed case.

Two instances, three keypoints.
  sample 0, norm 100 (radii 5 / 10 / 20 at t = 0.05 / 0.1 / 0.2):
    k0 d = 4          (hit at all t)
    k1 d = 8          (miss at 0.05; hit at 0.1, 0.2)
    k2 d = 15 (9, 12) (hit only at 0.2)
  sample 1, norm 50 (radii 2.5 / 5 / 10):
    k0 d = 1          (hit at all t)
    k1 d = 6          (hit only at 0.2)
    k2 invisible      (its 141 px error must not count)
PCK@0.05 = 2/5 = 0.4, PCK@0.1 = 3/5 = 0.6, PCK@0.2 = 5/5 = 1.0
EPE = (4 + 8 + 15 + 1 + 6) / 5 = 6.8
"""
import math

import numpy as np
import pytest
import torch

from kpdet.metrics import (
    bbox_longer_side,
    distance_metrics,
    epe,
    format_rows,
    format_table,
    pck,
    pck_per_keypoint,
    per_keypoint_table,
    rmse_px,
)

GT = np.array([[[10, 10], [20, 10], [30, 10]],
               [[0, 0], [5, 5], [0, 0]]], dtype=float)
PRED = np.array([[[14, 10], [20, 18], [39, 22]],
                 [[1, 0], [11, 5], [100, 100]]], dtype=float)
VIS = np.array([[2, 2, 1], [2, 1, 0]])
BBOX = np.array([[0, 0, 100, 30], [0, 0, 20, 50]], dtype=float)  # longer sides 100, 50


def test_longer_side_norm():
    assert bbox_longer_side(BBOX) == pytest.approx([100, 50])


def test_pck_and_epe_by_hand():
    norm = bbox_longer_side(BBOX)
    assert pck(PRED, GT, VIS, norm) == pytest.approx({"PCK@0.05": 0.4, "PCK@0.1": 0.6, "PCK@0.2": 1.0})
    assert epe(PRED, GT, VIS) == pytest.approx(6.8)


def test_torch_inputs_match_numpy():
    t = [torch.tensor(a) for a in (PRED, GT, VIS, bbox_longer_side(BBOX))]
    assert distance_metrics(*t) == pytest.approx(distance_metrics(PRED, GT, VIS, bbox_longer_side(BBOX)))


def test_per_keypoint_pck():
    # k0: 4, 1 -> hit at every t. k1: 8 (r 5/10/20), 6 (r 2.5/5/10) -> 0, 1/2, 1.
    # k2: only sample 0 counts (d 15) -> 0, 0, 1.
    acc, count = pck_per_keypoint(PRED, GT, VIS, [100, 50], 0.1)
    assert count.tolist() == [2, 2, 1]
    assert acc == pytest.approx([1.0, 0.5, 0.0])


def test_table_consistent_with_totals():
    rows = per_keypoint_table(PRED, GT, VIS, [100, 50], ["a", "b", "c"])
    assert [r["name"] for r in rows] == ["a", "b", "c", "all"]
    assert [r["EPE"] for r in rows[:3]] == pytest.approx([2.5, 7.0, 15.0])  # (4+1)/2, (8+6)/2, 15
    assert [r["PCK@0.2"] for r in rows[:3]] == pytest.approx([1.0, 1.0, 1.0])
    for key in ("PCK@0.05", "PCK@0.1", "PCK@0.2", "EPE"):  # count-weighted mean of rows = total
        weighted = sum(r[key] * r["n"] for r in rows[:3]) / sum(r["n"] for r in rows[:3])
        assert weighted == pytest.approx(rows[-1][key])
    assert rows[-1]["PCK@0.1"] == pytest.approx(0.6) and rows[-1]["EPE"] == pytest.approx(6.8)
    text = format_rows(rows)
    assert text.splitlines()[0].split() == ["name", "n", "PCK@0.05", "PCK@0.1", "PCK@0.2", "EPE"]
    assert text.splitlines()[-1].split() == ["all", "5", "0.4000", "0.6000", "1.0000", "6.8000"]


def test_unlabelled_nan_points_and_bad_norms_are_excluded():
    gt = GT.copy()
    gt[0, 2] = np.nan  # a DeepLabCut unlabelled point, even though marked visible
    # EPE over 4 points: (4 + 8 + 1 + 6) / 4 = 4.75
    assert epe(PRED, gt, VIS) == pytest.approx(4.75)
    # norm 0 for sample 1 drops it from PCK: sample 0 alone, k0/k1 -> @0.1: 4, 8 <= 10 -> 1.0
    assert pck(PRED, gt, VIS, [100, 0], (0.1,))["PCK@0.1"] == pytest.approx(1.0)
    assert math.isnan(epe(PRED, GT, np.zeros_like(VIS)))


def test_rmse_is_dlc_mean_euclidean_error_with_optional_pcutoff():
    assert rmse_px(PRED, GT, VIS) == pytest.approx(6.8)  # DLC's "RMSE" = EPE, not sqrt(MSE)
    # sqrt of the mean squared distance would be sqrt((16+64+225+1+36)/5) = 8.27: not this.
    conf = np.array([[0.9, 0.5, 0.7], [0.6, 0.1, 0.9]])
    # pcutoff 0.6 keeps d = 4, 15, 1 (k2 of sample 1 is unlabelled) -> 20/3
    assert rmse_px(PRED, GT, VIS, conf, pcutoff=0.6) == pytest.approx(20 / 3)


def test_format_table():
    text = format_table({"AP": 0.5, "PCK@0.1": 0.6, "EPE": float("nan")})
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "value"]
    assert lines[2].split() == ["AP", "0.5000"]
    assert lines[4].split() == ["EPE", "nan"]
