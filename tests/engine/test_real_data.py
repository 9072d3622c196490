"""The synthetic config trains and evaluates on real COCO-format data by overrides alone
(../shared/data/dlc_openfield: 4 keypoints, leftear/rightear flip pair, 640x480 PNG frames)."""
import json
import math

import pytest

from tests.conftest import SHARED_DATA, run_tool

OPENFIELD = SHARED_DATA / "dlc_openfield"


@pytest.mark.skipif(not (OPENFIELD / "train.json").exists(), reason="../shared/data not present")
def test_focal_config_trains_on_openfield_by_overrides(tmp_path):
    splits = [f"data.train.ann_file={OPENFIELD / 'train.json'}", f"data.train.img_dir={OPENFIELD / 'images'}",
              f"data.val.ann_file={OPENFIELD / 'test.json'}", f"data.val.img_dir={OPENFIELD / 'images'}"]
    out = run_tool("tools/train.py", "configs/synthetic/focal.yaml", *splits, f"work_dir={tmp_path}",
                   "train.epochs=1", "train.max_iters_per_epoch=2", "train.batch_size=8",
                   "data.num_workers=0", "eval.vis_images=2")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"EPE/snout", "EPE/leftear", "EPE/rightear", "EPE/tailbase", "RMSE", "AP"} <= set(metrics)
    assert "snout" in out  # the per-keypoint table names the file's keypoints
    assert 0 < metrics["EPE"] < 800  # image px on 640x480 frames: finite and inside the frame scale
    # every openfield keypoint is labelled: no negatives, so presence_AUROC is NaN (json writes NaN,
    # json.loads reads it back) and the summary table prints "nan"; ECE is over labelled keypoints
    assert math.isnan(metrics["presence_AUROC"]) and 0.0 <= metrics["ECE"] <= 1.0
    assert "presence_AUROC" in out and "nan" in out
