"""Any timm model as a trunk (`model.backbone: timm/<name>`, the `timm` extra): its deepest feature.

timm is imported here, on use, so the core install works without it.
"""
from __future__ import annotations

import difflib
from pathlib import Path

import torch
from torch import nn

PREFIX = "timm/"


def _timm():
    try:
        import timm
    except ImportError:
        raise ImportError("model.backbone='timm/...' needs timm, an optional extra: pip install kpdet[timm] "
                          "(from a checkout: pip install -e .[timm])") from None
    return timm


def _check_name(timm, name: str) -> None:
    """Unknown model -> ValueError naming it and the closest names timm knows."""
    if timm.is_model(name.split(".")[0]):  # "resnet18.a1_in1k": a model and a pretrained tag
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; close names: {', '.join(close)}" if close else "; see timm.list_models()"
    raise ValueError(f"model.backbone='{PREFIX}{name}': timm has no model {name!r}{hint}")


def _weights_args(name: str, pretrained: str | None) -> dict:
    """timm.create_model arguments for model.pretrained: null (random init, nothing fetched), `hub`
    (timm's default weights from the Hugging Face hub) or a local timm/torchvision checkpoint file
    (.pth, .bin or .safetensors; a {'state_dict': ...} or {'model': ...} wrapper is unwrapped)."""
    if pretrained is None:
        return {"pretrained": False}
    if pretrained == "hub":
        return {"pretrained": True}
    if pretrained == "imagenet":
        raise ValueError(f"model.pretrained='imagenet' names torchvision's ResNet weights; for "
                         f"timm/{name} use 'hub' (timm's default weights) or a path to a checkpoint file")
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained={pretrained!r}: no such file (or use 'hub' or null)")
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}


class TimmBackbone(nn.Module):
    """timm `features_only` model, deepest feature: [B, 3, H, W] -> [B, C, H/s, W/s], with C =
    `out_channels` and s = `stride` read from timm's feature_info (32 for most classifiers)."""

    def __init__(self, name: str, pretrained: str | None = None):
        super().__init__()
        timm = _timm()
        _check_name(timm, name)
        kwargs = _weights_args(name, pretrained)
        try:
            # every feature level is returned and the last used: out_indices=(-1,) needs a recent timm
            self.body = timm.create_model(name, features_only=True, **kwargs)
        except OSError as error:  # hub unreachable: huggingface_hub's LocalEntryNotFoundError, URLError
            if pretrained != "hub":
                raise
            raise RuntimeError(
                f"could not fetch timm's weights for {name} ({type(error).__name__}: {error}). Offline? "
                f"On a machine that is online run `timm.create_model('{name}', pretrained=True)`, copy the "
                f"file it cached (~/.cache/huggingface/hub/models--timm--{name}*/.../model.safetensors) "
                f"and pass model.pretrained=/path/to/model.safetensors") from None
        except RuntimeError as error:  # state dict mismatch, or no features_only for this model
            raise RuntimeError(f"model.backbone='{PREFIX}{name}' (model.pretrained={pretrained!r}): "
                               f"{' '.join(str(error).split()[:40])}") from None
        self.out_channels = self.body.feature_info.channels()[-1]
        self.stride = self.body.feature_info.reduction()[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[-1]
