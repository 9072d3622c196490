"""torchvision ResNet backbones without their pooling and classifier: image -> stride-32 features."""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

# name -> (constructor, output channels)
RESNETS = {
    "resnet18": (torchvision.models.resnet18, 512),
    "resnet34": (torchvision.models.resnet34, 512),
    "resnet50": (torchvision.models.resnet50, 2048),
}


class ResNetBackbone(nn.Module):
    """ResNet trunk: [B, 3, H, W] -> [B, C, H/32, W/32]."""

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
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained={pretrained!r}: no such file (or use 'imagenet' or null)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        state = state.get(key, state) if isinstance(state, dict) else state
    return state


def _weights_enum(name: str) -> str:
    return {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights",
            "resnet50": "ResNet50_Weights"}[name]
