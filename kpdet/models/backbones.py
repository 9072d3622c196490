"""Trunks: image -> features at `stride` (`out_channels` channels). torchvision ResNets (stride 32),
HRNet's high-resolution branch (stride 4, kpdet/models/hrnet.py) and any timm model
(`timm/<name>`, kpdet/models/timm_backbone.py). `build_backbone` picks one by name."""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from kpdet.models.hrnet import ARCHS as HRNETS
from kpdet.models.hrnet import HRNetBackbone
from kpdet.models.timm_backbone import PREFIX as TIMM_PREFIX
from kpdet.models.timm_backbone import TimmBackbone

# name -> (constructor, output channels)
RESNETS = {
    "resnet18": (torchvision.models.resnet18, 512),
    "resnet34": (torchvision.models.resnet34, 512),
    "resnet50": (torchvision.models.resnet50, 2048),
}
BACKBONES = (*RESNETS, *HRNETS)  # and timm/<name>


class ResNetBackbone(nn.Module):
    """ResNet trunk: [B, 3, H, W] -> [B, C, H/32, W/32]."""

    stride = 32

    def __init__(self, name: str = "resnet18", pretrained: str | None = None):
        super().__init__()
        if name not in RESNETS:
            raise ValueError(f"unknown backbone {name!r}; known: {', '.join(RESNETS)}")
        constructor, self.out_channels = RESNETS[name]
        net = constructor(weights=None)
        if pretrained is not None:
            net.load_state_dict(_pretrained_state(name, pretrained))
        self.body = nn.Sequential(*list(net.children())[:-2])  # drop avgpool and fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def build_backbone(name: str, pretrained: str | None = None) -> nn.Module:
    """`resnet18|34|50`, `hrnet_w18_small|_v1`, `hrnet_w18|32|48` or `timm/<name>` (the timm extra).
    Every trunk has `out_channels` and `stride` (input px per feature px). `pretrained` may also be a
    kpdet checkpoint or pretrained trunk file (kpdet/engine/pretrain.py), for any trunk."""
    own = _kpdet_weights(pretrained)
    if own is not None:
        trunk = build_backbone(name)
        _load_state_by_name(trunk, name, own, pretrained)
        return trunk
    if name.startswith(TIMM_PREFIX):
        return TimmBackbone(name.removeprefix(TIMM_PREFIX), pretrained)
    if name in HRNETS:
        trunk = HRNetBackbone(name)
        if pretrained is not None:
            load_by_name(trunk, name, pretrained)
        return trunk
    if name in RESNETS:
        return ResNetBackbone(name, pretrained)
    raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}, timm/<name>")


def load_by_name(trunk: nn.Module, name: str, pretrained: str) -> None:
    """Copy a checkpoint file's tensors whose names (after a `backbone.` or `module.` prefix) are
    the trunk's: official HRNet pose or ImageNet checkpoints, MMPose's, or a trunk's own state dict.
    Keys the trunk lacks (classifier, final layer) are skipped; a trunk key the file lacks raises."""
    if pretrained in ("imagenet", "hub"):
        raise ValueError(f"model.pretrained={pretrained!r}: there are no downloadable weights for {name} "
                         f"here; pass a local checkpoint (e.g. the HRNet ImageNet or pose checkpoints of "
                         f"github.com/HRNet) as model.pretrained=/path/to/file.pth")
    _load_state_by_name(trunk, name, _read_state(pretrained), pretrained)


def _load_state_by_name(trunk: nn.Module, name: str, state: dict, source: str) -> None:
    state = {_strip(k): v for k, v in state.items()}
    own = trunk.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        raise ValueError(f"model.pretrained={source!r} does not fit {name}: {len(missing)} of its "
                         f"{len(own)} tensors missing (e.g. {missing[:3]}), shapes differ for {wrong[:3]}")
    trunk.load_state_dict({k: state[k] for k in own})


def _kpdet_weights(pretrained: str | None) -> dict | None:
    """The trunk's tensors of a kpdet pretrained trunk ({'trunk': ...}) or training checkpoint
    ({'model': ..., 'config': ...}; its `backbone.` tensors), else None (other files, names, None)."""
    if pretrained is None or not Path(pretrained).is_file():
        return None
    saved = torch.load(pretrained, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict):
        return None
    if "trunk" in saved:
        return saved["trunk"]
    if "model" in saved and "config" in saved:
        return {k: v for k, v in saved["model"].items() if k.startswith("backbone.")}
    return None


def _strip(key: str) -> str:
    for prefix in ("module.", "backbone."):
        key = key.removeprefix(prefix)
    return key


def _read_state(pretrained: str) -> dict:
    """A local weights file: a state dict, or one under a 'state_dict', 'model' (a kpdet checkpoint) or
    'trunk' (a kpdet pretrained trunk, kpdet/engine/pretrain.py) key."""
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained={pretrained!r}: no such file (or use 'imagenet' or null)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "trunk"):
        state = state.get(key, state) if isinstance(state, dict) else state
    return state


def _pretrained_state(name: str, pretrained: str) -> dict:
    """`imagenet` (torchvision's weights, fetched when online) or a path to a local file."""
    if pretrained == "imagenet":
        weights = torchvision.models.get_weight(f"{_weights_enum(name)}.IMAGENET1K_V1")
        try:
            return weights.get_state_dict(progress=False)
        except OSError as error:  # URLError is an OSError: offline machine
            raise RuntimeError(
                f"could not fetch torchvision's ImageNet weights for {name} ({error}). "
                f"Offline? Download {weights.url} on a machine that is online and pass "
                f"model.pretrained=/path/to/{Path(weights.url).name}"
            ) from None
    if pretrained == "hub":
        raise ValueError(f"model.pretrained='hub' is for timm/<name> backbones; {name} takes 'imagenet' "
                         f"(torchvision's weights) or a path to a local file")
    return _read_state(pretrained)


def _weights_enum(name: str) -> str:
    return {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights",
            "resnet50": "ResNet50_Weights"}[name]
