"""Loss diagnostics: gradient shares and output statistics on hand-worked maps; the tool on a tiny run."""
import json

import pytest
import torch

from kpdet.engine.diagnose import channel_separation, gradient_split, output_stats
from tests.conftest import data_overrides, run_tool


def _maps():
    # One 1x4 channel: target [1, 0.5, 0, 0] (positive, neighbour, two far pixels).
    target = torch.tensor([1.0, 0.5, 0.0, 0.0]).view(1, 1, 1, 4)
    return target, torch.ones(1, 1)


def test_gradient_split_shares_of_absolute_mass():
    target, weight = _maps()
    grad = torch.tensor([-3.0, 0.5, 0.25, 0.25]).view(1, 1, 1, 4)
    # |g| = 3, 0.5, 0.25, 0.25 -> total 4: positive 3/4, neighbour 0.5/4, far 0.5/4.
    split = gradient_split(grad, target, weight)
    assert split == pytest.approx({"grad_pos": 0.75, "grad_near": 0.125, "grad_far": 0.125})


def test_gradient_split_ignores_weight_zero_channels():
    target, _ = _maps()
    target = torch.cat([target, target], 1)
    grad = torch.tensor([[-3.0, 0.5, 0.25, 0.25], [0.0, 0.0, 100.0, 100.0]]).view(1, 2, 1, 4)
    split = gradient_split(grad, target, torch.tensor([[1.0, 0.0]]))
    assert split["grad_pos"] == pytest.approx(0.75)


def test_output_stats_contrast_and_spread():
    target, weight = _maps()
    scores = torch.tensor([0.9, 0.5, 0.1, 0.3]).view(1, 1, 1, 4)
    stats = output_stats(scores, target, weight)
    # mean (0.9 + 0.5 + 0.1 + 0.3) / 4 = 0.45; contrast 0.9 - (0.1 + 0.3) / 2 = 0.7;
    # spread = sample std of the four scores = sqrt(((.45)^2 + (.05)^2 + (.35)^2 + (.15)^2) / 3)
    assert stats["score_mean"] == pytest.approx(0.45)
    assert stats["contrast"] == pytest.approx(0.7)
    assert stats["score_spread"] == pytest.approx((0.35 / 3) ** 0.5)


def test_flat_output_has_no_contrast():
    target, weight = _maps()
    stats = output_stats(torch.full((1, 1, 1, 4), 0.12), target, weight)
    assert stats["contrast"] == pytest.approx(0.0, abs=1e-7)
    assert stats["score_spread"] == pytest.approx(0.0, abs=1e-7)


def test_separation_compares_a_channel_at_its_own_keypoint_and_at_the_others():
    # Three keypoints on a 1x3 map, keypoint k at pixel k; the third is unlabelled (weight 0).
    targets = torch.eye(3).view(1, 3, 1, 3)
    scores = torch.tensor([[0.9, 0.3, 0.5], [0.6, 0.7, 0.0], [9.0, 9.0, 9.0]]).view(1, 3, 1, 3)
    weights = torch.tensor([[1.0, 1.0, 0.0]])
    # pairs (0, 1): 0.9 - 0.3 = 0.6; (1, 0): 0.7 - 0.6 = 0.1; keypoint 2 takes no part -> 0.35
    assert channel_separation(scores, targets, weights) == pytest.approx(0.35)
    # both channels firing on keypoint 0's part: (0, 1) 0.9 - 0.1 = 0.8, (1, 0) 0.1 - 0.9 = -0.8 -> 0
    shared = torch.tensor([[0.9, 0.1, 0.1], [0.9, 0.1, 0.1], [0.0, 0.0, 0.0]]).view(1, 3, 1, 3)
    assert channel_separation(shared, targets, weights) == pytest.approx(0.0)
    one_labelled = torch.tensor([[1.0, 0.0, 0.0]])  # no pair to compare
    assert torch.isnan(torch.tensor(channel_separation(scores, targets, one_labelled)))


def test_diagnose_tool_reports_every_step(tiny_synthetic, tmp_path):
    out = tmp_path / "rows.json"
    run_tool("tools/diagnose.py", "configs/smoke.yaml", "--steps", "3", "--every", "2", "--out", str(out),
             *data_overrides(tiny_synthetic))
    rows = json.loads(out.read_text())
    assert [r["step"] for r in rows] == [0, 2]
    for row in rows:
        assert row["grad_pos"] + row["grad_near"] + row["grad_far"] == pytest.approx(1.0, abs=1e-5)
        assert row["grad_backbone"] > 0
        assert -1.0 <= row["separation"] <= 1.0  # smoke.yaml: a sigmoid loss, scores in [0, 1]
