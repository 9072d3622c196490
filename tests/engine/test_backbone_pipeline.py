"""HRNet and a timm trunk through the whole pipeline: ONNX export checked by onnxruntime, the
Predictor with flip test (PyTorch and ONNX alike), and an interrupted run that resumes exactly."""

import numpy as np
import pytest
import torch

from kpdet.config import load_config
from kpdet.engine import runner
from tests.conftest import data_overrides, die_at_epoch, needs_timm, write_checkpoint

TRUNKS = ["hrnet_w18_small", pytest.param("timm/resnet10t", marks=needs_timm)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("backbone", TRUNKS)
def test_onnx_export_and_flip_test_predictor(backbone, tiny_synthetic, tmp_path):
    from kpdet.engine.export import export
    from kpdet.inference import Predictor

    checkpoint = write_checkpoint(tiny_synthetic, tmp_path, f"model.backbone={backbone}")
    assert export(str(checkpoint), str(tmp_path / "model.onnx")) <= 1e-4  # onnxruntime vs PyTorch heatmaps
    image = sorted((tiny_synthetic / "images" / "val").iterdir())[0]
    boxes = [[5, 5, 80, 100], [20, 10, 60, 60]]
    results = [Predictor.from_checkpoint(checkpoint, device="cpu", flip_test=True, onnx=onnx).predict(
        image, boxes, heatmaps=True) for onnx in (None, tmp_path / "model.onnx")]
    assert results[0]["keypoints"].shape == (2, 17, 2) and results[0]["heatmaps"].shape == (2, 17, 16, 16)
    np.testing.assert_allclose(results[1]["keypoints"], results[0]["keypoints"], atol=0.01)
    np.testing.assert_allclose(results[1]["heatmaps"], results[0]["heatmaps"], atol=1e-4)


@pytest.mark.parametrize("backbone", TRUNKS)
def test_interrupted_then_resumed_equals_uninterrupted(backbone, tiny_synthetic, tmp_path, monkeypatch):
    def config(work, *extra):
        return load_config("configs/smoke.yaml", [*data_overrides(tiny_synthetic), f"work_dir={work}",
                                                  f"model.backbone={backbone}", "train.epochs=2",
                                                  "train.max_iters_per_epoch=1", "train.batch_size=4",
                                                  "train.val_interval=2", "eval.vis_images=0", *extra])

    reference = runner.fit(config(tmp_path / "full"))
    undo = die_at_epoch(monkeypatch, 1)  # the run dies after epoch 0's checkpoint
    with pytest.raises(KeyboardInterrupt):
        runner.fit(config(tmp_path / "cut"))
    undo()
    assert runner.fit(config(tmp_path / "cut", "resume=auto")) == reference
    full, cut = (torch.load(tmp_path / d / "last.pt", weights_only=True)["model"] for d in ("full", "cut"))
    assert full.keys() == cut.keys() and all(torch.equal(full[k], cut[k]) for k in full)
