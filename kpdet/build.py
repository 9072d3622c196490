"""Config and checkpoint -> the objects inference needs: codec, loss (for its activation), model, spec.

Nothing here touches data loaders, so `kpdet.Predictor` can build a model from a
checkpoint without the training engine; `engine/builders.py` re-exports these.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from kpdet.codecs import build_codec
from kpdet.keypoints import KeypointSpec
from kpdet.losses import LOSSES, build_loss
from kpdet.models import SIGMOID_PRIOR_BIAS, build_model, output_stride


def resolve_device(name: str | torch.device) -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without CUDA raises."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} but CUDA is not available (use device=auto or device=cpu)")
    return torch.device(name)


def build_loss_from_cfg(cfg: DictConfig):
    """The configured loss; it must take heatmaps (an ordinal loss needs an ordinal head)."""
    loss = build_loss(OmegaConf.to_container(cfg.loss, resolve=True))
    if getattr(loss, "target_kind", "heatmap") != "heatmap":
        raise ValueError(f"loss.type={cfg.loss.type!r} is a {loss.target_kind} loss over a bins axis, not a "
                         f"heatmap loss; the heatmap trainer cannot use it")
    return loss


def build_codec_from_cfg(cfg: DictConfig):
    width, height = cfg.model.input_size
    stride = output_stride(cfg.model.num_deconv)
    spec = OmegaConf.to_container(cfg.codec, resolve=True)
    return build_codec(spec, input_size=(width, height), heatmap_size=(width // stride, height // stride),
                       **_focal_codec_params(cfg))


def _focal_codec_params(cfg: DictConfig) -> dict:
    """distance_aware_focal needs exactly one 1.0 per visible keypoint (contract)."""
    return {"one_positive": True} if LOSSES.canonical(cfg.loss.type) == "distance_aware_focal" else {}


def build_model_from_cfg(cfg: DictConfig, num_keypoints: int, activation: str, pretrained: bool = True):
    """The configured network; pretrained=False skips `model.pretrained` (weights come from a checkpoint)."""
    m = cfg.model
    final_bias = m.final_bias
    if final_bias is None:
        final_bias = SIGMOID_PRIOR_BIAS if activation == "sigmoid" else 0.0
    return build_model(m.backbone, num_keypoints, m.pretrained if pretrained else None, m.head_channels,
                       m.num_deconv, final_bias, m.head_conv, m.head_init_std)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load on the CPU with `weights_only=True` (tensors, numbers, strings, containers only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None


def eval_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights to evaluate: the EMA's when the run kept one, else the model's."""
    ema = checkpoint.get("ema")
    if not ema:
        return checkpoint["model"]
    return {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")}


def spec_from_checkpoint(checkpoint: dict) -> KeypointSpec:
    meta = checkpoint["keypoints"]
    return KeypointSpec(tuple(meta["names"]), tuple(tuple(p) for p in meta["skeleton"]),
                        tuple(meta["flip_index"]), tuple(meta["sigmas"]))


def spec_to_checkpoint(spec: KeypointSpec) -> dict:
    return {"names": list(spec.names), "skeleton": [list(p) for p in spec.skeleton],
            "flip_index": list(spec.flip_index), "sigmas": list(spec.sigmas)}
