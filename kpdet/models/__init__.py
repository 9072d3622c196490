"""Models: backbone + head, returning raw heatmap logits. Models know no losses."""
from __future__ import annotations

import torch
from torch import nn

from kpdet.models.backbones import ResNetBackbone
from kpdet.models.heads import DeconvHead

SIGMOID_PRIOR_BIAS = -2.19  # -log((1 - 0.1) / 0.1): initial sigmoid output 0.1 (CenterNet)


class HeatmapModel(nn.Module):
    """[B, 3, H, W] image -> [B, K, H/4, W/4] heatmap logits (with the default 3 deconvolutions)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def build_model(backbone: str, num_keypoints: int, pretrained: str | None = None,
                head_channels: int = 256, num_deconv: int = 3, final_bias: float = 0.0,
                head_conv: int = 0, init_std: float = 0.001) -> HeatmapModel:
    """SimpleBaseline: ResNet trunk + deconvolution head. `final_bias`, `head_conv`, `init_std`:
    see DeconvHead."""
    trunk = ResNetBackbone(backbone, pretrained)
    head = DeconvHead(trunk.out_channels, num_keypoints, head_channels, num_deconv, final_bias,
                      head_conv, init_std)
    return HeatmapModel(trunk, head)


def output_stride(num_deconv: int) -> int:
    """Input px per heatmap px: 32 / 2^num_deconv."""
    return 32 // 2**num_deconv
