"""Regression test for focal's slow start (docs/focal.md): a short run of the openfield focal
recipe must not leave the output spatially flat.

Measured with tools/diagnose.py on configs/openfield/focal.yaml (`--steps 27 --every 26
seed=S data.num_workers=0`), seeds 0, 1, 2: at initialisation the contrast (score at the
keypoint pixel minus the mean far-background score) is 0.0000 and the spread over pixels
0.0001; after 26 steps, with the prior p = 0.1 (the default), the contrast is 0.041-0.045 and
the spread 0.027-0.030; with p = 0.01 (`model.final_bias=-4.6`) 0.030-0.083 and 0.018-0.038.
The thresholds are half the smallest value measured under either prior: an output that stays
flat (the failure mode CenterNet #670 reports as heatmaps collapsing to the floor) fails them
by two orders of magnitude.
"""
import pytest

from kpdet.config import load_config
from kpdet.engine.diagnose import diagnose
from tests.conftest import ROOT, SHARED_DATA

OPENFIELD = SHARED_DATA / "dlc_openfield"


@pytest.mark.slow
@pytest.mark.skipif(not (OPENFIELD / "train.json").exists(), reason="../shared/data not present")
def test_openfield_focal_output_is_not_flat_after_26_steps():
    splits = [f"data.train.ann_file={OPENFIELD / 'train.json'}", f"data.train.img_dir={OPENFIELD / 'images'}",
              f"data.val.ann_file={OPENFIELD / 'test.json'}", f"data.val.img_dir={OPENFIELD / 'images'}"]
    cfg = load_config(ROOT / "configs/openfield/focal.yaml", [*splits, "data.num_workers=0", "device=cpu"])
    first, last = diagnose(cfg, steps=27, every=26)
    assert abs(first["contrast"]) < 0.002 and first["score_spread"] < 0.002  # flat at initialisation
    assert last["step"] == 26
    assert last["contrast"] > 0.015
    assert last["score_spread"] > 0.009
