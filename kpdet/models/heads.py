"""SimpleBaseline head (Xiao et al. 2018): deconvolutions to stride-4 heatmap logits."""
from __future__ import annotations

import torch
from torch import nn

from kpdet.registry import Registry


class DeconvHead(nn.Module):
    """[B, C_in, h, w] -> [B, K, h * 2^num_deconv, w * 2^num_deconv] raw logits.

    Each deconvolution (kernel 4, stride 2) + BN + ReLU doubles the resolution;
    a 1x1 convolution gives one channel per keypoint. `final_bias` sets the
    initial bias of that convolution: -2.19 = -log((1 - 0.1) / 0.1) makes
    sigmoid outputs start near 0.1 (the CenterNet / focal-loss prior).
    `head_conv` > 0 puts a 3x3 convolution (that many channels) + ReLU before
    the 1x1, as CenterNet's output heads do. `init_std`: normal init of the
    convolution weights (SimpleBaseline: 0.001). `offset`: a second 1x1 convolution gives
    2 channels (dx, dy) per keypoint, appended after the K heatmap channels -> [B, 3K, h, w]
    (kpdet.codecs.offset; CenterNet's `hp_offset`, DeepLabCut's locref). `displacements` > 0: a
    third 1x1 convolution with that many channels appended last (multi-instance pose: 2K
    centre-to-keypoint displacements, kpdet.codecs.pose).
    """

    def __init__(self, in_channels: int, num_keypoints: int, channels: int = 256,
                 num_deconv: int = 3, final_bias: float = 0.0, head_conv: int = 0, init_std: float = 0.001,
                 offset: bool = False, displacements: int = 0):
        super().__init__()
        layers = []
        for i in range(num_deconv):
            layers += [
                nn.ConvTranspose2d(in_channels if i == 0 else channels, channels, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
        width = channels if num_deconv else in_channels
        self.deconv = nn.Sequential(*layers)
        self.conv = nn.Identity()
        if head_conv > 0:
            self.conv = nn.Sequential(nn.Conv2d(width, head_conv, 3, padding=1), nn.ReLU(inplace=True))
            width = head_conv
        self.final = nn.Conv2d(width, num_keypoints, 1)
        self.offset = nn.Conv2d(width, 2 * num_keypoints, 1) if offset else None
        self._init_weights(final_bias, init_std)
        self.displacement = nn.Conv2d(width, displacements, 1) if displacements else None
        for extra in (self.offset, self.displacement):  # regressions start at 0
            if extra is not None:
                nn.init.normal_(extra.weight, std=init_std)
                nn.init.zeros_(extra.bias)

    def _init_weights(self, final_bias: float, init_std: float) -> None:
        """Deconvolutions and the final 1x1: normal(0, init_std); the 3x3 conv keeps PyTorch's
        default (Kaiming-uniform) init, as in CenterNet: two small-std layers in a row would
        shrink the gradient that reaches the backbone."""
        for module in [*self.deconv.modules(), self.final]:
            if isinstance(module, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(module.weight, std=init_std)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.constant_(self.final.bias, final_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.conv(self.deconv(x))
        if self.offset is None and self.displacement is None:
            return self.final(features)
        extra = [head(features) for head in (self.offset, self.displacement) if head is not None]
        return torch.cat([self.final(features), *extra], 1)


# Heads by name (`model.head`). Every head takes (in_channels, num_keypoints, channels, num_deconv,
# final_bias, head_conv, init_std, **its own params) and has a `target_kind` ("heatmap" by default):
# the kind of targets, codec and loss it trains with. A new head is one class plus one register line.
# A head of a new target_kind also needs: its codec (`target_kind`, batched encode/decode, and
# `flip_outputs` for flip testing), its losses (`target_kind`), and a predictor with
# HeatmapPredictor's call protocol (`predictor(images) -> (keypoints [B, K, 2] crop px,
# confidences [B, K], outputs)`, `.model`) picked in kpdet.predict.make_predictor. Outputs may be
# a tuple (ordinal_xy: x and y logits, XYLoss), and so may loader-side targets.
HEADS = Registry("head")
HEADS.register("heatmap")(DeconvHead)
