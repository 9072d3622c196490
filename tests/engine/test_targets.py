"""Heatmap targets rendered in the loader and in the training step are the same."""
import pytest
import torch
from torch.utils.data import default_collate

from kpdet.codecs import build_codec
from kpdet.config import load_config
from kpdet.data import TopDownDataset
from kpdet.data.targets import WithHeatmapTargets
from kpdet.engine import runner
from kpdet.engine.train import encode_targets
from tests.conftest import data_overrides

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_loader_and_step_targets_are_identical(tiny_synthetic, device):
    codec = build_codec({"type": "udp", "sigma": 1.5}, input_size=(64, 64), heatmap_size=(16, 16),
                        one_positive=True)
    root = tiny_synthetic
    dataset = TopDownDataset(root / "train.json", root / "images", (64, 64), train=False)
    batch = default_collate([dataset[i] for i in range(6)])
    in_loader = default_collate([WithHeatmapTargets(dataset, codec)[i] for i in range(6)])
    on_device = encode_targets(codec, batch, torch.device(device))
    assert torch.allclose(on_device[0].cpu(), in_loader["heatmaps"], atol=1e-6)
    assert torch.equal(on_device[1].cpu(), in_loader["weights"])
    assert (in_loader["heatmaps"] == 1.0).flatten(2).sum(-1).tolist() == in_loader["weights"].tolist()


def test_training_is_the_same_either_way(tiny_synthetic, tmp_path):
    weights = {}
    for flag in ("true", "false"):
        overrides = [*data_overrides(tiny_synthetic), f"work_dir={tmp_path / flag}", "eval.vis_images=0",
                     f"train.device_targets={flag}", "train.max_iters_per_epoch=2"]
        cfg = load_config("configs/smoke.yaml", overrides)
        runner.fit(cfg)
        weights[flag] = torch.load(tmp_path / flag / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(weights["true"][k], weights["false"][k]) for k in weights["true"])


@pytest.mark.parametrize("loss, expected", [("daf", True), ("distance_aware_focal", True), ("mse", False),
                                            ("qfl", False)])  # QFL's soft targets need no exact 1.0
def test_focal_loss_gets_one_positive_targets_by_any_name(loss, expected):
    from kpdet.engine.builders import build_codec_from_cfg

    codec = build_codec_from_cfg(load_config("configs/smoke.yaml", [f"loss.type={loss}"]))
    assert codec.one_positive is expected
