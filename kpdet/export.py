"""The network to ONNX and back: `export_onnx` writes it, `OnnxModel` runs it with onnxruntime.

Only the network crosses over: activation, flip test and codec decoding stay in
kpdet (`kpdet.predict`), so a PyTorch model and an `OnnxModel` are interchangeable
inside a predictor and give the same keypoints.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT_NAME, OUTPUT_NAME = "images", "logits"
OPSET = 17


def export_onnx(model: nn.Module, path: str | Path, input_size: tuple[int, int]) -> Path:
    """Write `model` (images [B, 3, H, W] -> logits) to `path` with a dynamic batch axis.

    input_size: (W, H) of the network input. Uses the TorchScript exporter (`dynamo=False`):
    it needs no onnxscript and traces this convolutional network exactly.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = input_size
    example = torch.zeros(1, 3, height, width, device=next(model.parameters()).device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based exporter"
        torch.onnx.export(model.eval(), (example,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    return path


class OnnxModel:
    """An exported network behind the model call protocol: images [B, 3, H, W] -> logits tensor (CPU).

    providers: onnxruntime execution providers, CPU by default.
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model {path} does not exist")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.path = path
        providers = providers or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_shape = self.session.get_inputs()[0].shape  # ['batch', 3, H, W]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        expected = tuple(self.input_shape[1:])
        if tuple(images.shape[1:]) != expected:
            raise ValueError(f"{self.path} takes images [B, {', '.join(map(str, expected))}], "
                             f"got {list(images.shape)}")
        array = np.ascontiguousarray(images.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {self.session.get_inputs()[0].name: array})[0])

    def eval(self) -> OnnxModel:
        return self

    def to(self, *args, **kwargs) -> OnnxModel:
        return self


@torch.no_grad()
def largest_difference(model: nn.Module, onnx_model: OnnxModel, crops: torch.Tensor) -> float:
    """max |logits_torch - logits_onnx| over normalised crops [B, 3, H, W] (run on the CPU)."""
    reference = model.eval()(crops.to(next(model.parameters()).device)).float().cpu()
    return float((reference - onnx_model(crops)).abs().max())
