"""Ordinal coordinate head (SimCC, Li et al. 2022): per keypoint, logits over x bins and y bins."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kpdet.models.heads import HEADS, DeconvHead


@HEADS.register("ordinal_xy")
class OrdinalXYHead(nn.Module):
    """[B, C_in, H_in/s, W_in/s] -> (x logits [B, K, N_x], y logits [B, K, N_y]), s = in_stride
    (the trunk's stride: 32 for ResNets, 4 for HRNet; build_model passes it).

    Shapes, for input (W_in, H_in) and d = num_deconv:
      DeconvHead (d deconvolutions, optional head_conv, 1x1 conv to K channels)
        -> [B, K, h, w] with (w, h) = (W_in, H_in) / s * 2^d
      flatten -> [B, K, h * w]
      Linear(h * w, N_x) and Linear(h * w, N_y), shared by the keypoints
        -> [B, K, N_x], [B, K, N_y]
    bins = (N_x, N_y), normally (W_in * split, H_in * split) from the ordinal_xy codec.
    With d = 0 this is MMPose's SimCCHead (stride-32 features, no deconvolution).
    `channels`, `final_bias`, `head_conv`, `init_std`: as DeconvHead.
    """

    target_kind = "ordinal"

    def __init__(self, in_channels: int, num_keypoints: int, channels: int = 256, num_deconv: int = 3,
                 final_bias: float = 0.0, head_conv: int = 0, init_std: float = 0.001,
                 input_size: Sequence[int] = (192, 256), bins: Sequence[int] = (384, 512),
                 in_stride: int = 32):
        super().__init__()
        width, height = (int(v) // in_stride * 2**num_deconv for v in input_size)
        self.features = DeconvHead(in_channels, num_keypoints, channels, num_deconv, final_bias, head_conv,
                                   init_std)
        self.x = nn.Linear(width * height, int(bins[0]))
        self.y = nn.Linear(width * height, int(bins[1]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = self.features(x).flatten(2)  # [B, K, h * w]
        return self.x(flat), self.y(flat)
