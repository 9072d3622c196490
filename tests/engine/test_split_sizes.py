"""No silent no-op runs: a training set smaller than one batch trains on its partial batch (and says so);
an empty split after filtering stops, naming the split and the file."""
import json

import pytest
import torch

from kpdet.config import load_config
from kpdet.data.coco import DatasetError
from kpdet.engine import runner
from tests.conftest import data_overrides


def test_fewer_samples_than_one_batch_still_train_one_step_per_epoch(tiny_synthetic, tmp_path, capsys):
    # val.json as the training set: 12 instances, fewer than the batch of 32; dropping the last partial
    # batch (as every epoch does) would leave 0 steps and a report of the untrained model's metrics
    overrides = [*data_overrides(tiny_synthetic), f"data.train.ann_file={tiny_synthetic / 'val.json'}",
                 f"work_dir={tmp_path}", "train.batch_size=32", "train.epochs=2", "eval.vis_images=0"]
    runner.fit(load_config("configs/smoke.yaml", overrides))
    assert ("note: data.train has 12 samples, fewer than train.batch_size=32: keeping the partial batch (one "
            "step of 12 per epoch)") in capsys.readouterr().out
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["step"] == 2


def test_a_split_empty_after_filtering_stops_with_its_name(tiny_synthetic, tmp_path):
    data = json.loads((tiny_synthetic / "val.json").read_text())
    for ann in data["annotations"]:
        ann["keypoints"][2::3] = [0] * (len(ann["keypoints"]) // 3)  # no labelled keypoint: filtered out
        ann["num_keypoints"] = 0
    empty = tmp_path / "unlabelled.json"
    empty.write_text(json.dumps(data))
    overrides = [*data_overrides(tiny_synthetic), f"data.val.ann_file={empty}", f"work_dir={tmp_path}"]
    with pytest.raises(DatasetError, match=rf"data.val \({empty}\) has no samples after filtering"):
        runner.fit(load_config("configs/smoke.yaml", overrides))
