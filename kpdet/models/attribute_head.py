"""Per-instance ordinal attribute head: one set of class logits per crop, beside the keypoint head."""
from __future__ import annotations

import torch
from torch import nn


class AttributeHead(nn.Module):
    """Backbone features [B, C_in, h, w] -> class logits [B, classes].

    Global average pool over (h, w), then one linear layer: the crop's class (e.g. an occlusion
    level) is a property of the whole instance, so it reads the pooled trunk features that the
    keypoint head also sees. The classes are ordered 0..classes-1; the ordering lives in the loss
    (squared EMD) and the metric (mean absolute class error), not here.
    """

    def __init__(self, in_channels: int, classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(features).flatten(1))
