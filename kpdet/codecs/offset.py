"""Offset head targets and decoding: integer heatmap peak + a regressed sub-pixel offset.

CenterNet (`reg` / `hp_offset`, Zhou et al. 2019) and DeepLabCut (location refinement,
Insafutdinov et al. 2016) get sub-pixel precision from a second output, not from the heatmap:
at a pixel p near keypoint centre c (heatmap px) the network regresses d = c - p, and the
decoded location is argmax + d at the argmax.

Layout (`model.offset: true`): the head gives C + 2C channels, [B, 3C, H, W]: C heatmap logits,
then one (dx, dy) pair per heatmap channel (not shared across channels, as DeepLabCut's
locref): channel C + 2c is dx of channel c, C + 2c + 1 its dy, in heatmap px. `split_outputs`
reshapes the offsets to [B, C, 2, H, W].

Trained pixels: those within `radius` (Chebyshev, heatmap px) of the pixel nearest the centre,
n = floor(c + 0.5). radius = 0 trains the nearest pixel only (CenterNet); radius >= 1 also
its neighbours (DeepLabCut trains a disc), so a peak found one pixel off still reads a
trained offset.
"""
from __future__ import annotations

from typing import Any

import torch

from .refine import heatmap_argmax


def offset_targets(centres: torch.Tensor, visible: torch.Tensor, heatmap_size: tuple[int, int],
                   radius: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """centres [B, K, 2] heatmap px, visible [B, K] bool ->
    (targets [B, K, 2, H, W] float32: c - p at pixel p, mask [B, K, H, W] float32: 1 where trained).

    Pixel p is trained when |p - floor(c + 0.5)| <= radius on both axes and inside the map.
    Separable, no loop: per axis [B, K, W] and [B, K, H] factors, one outer product.
    """
    W, H = heatmap_size
    c = centres.float().nan_to_num(-1e6)
    gx = torch.arange(W, device=c.device, dtype=torch.float32)
    gy = torch.arange(H, device=c.device, dtype=torch.float32)
    near = torch.floor(c + 0.5)
    in_x = ((gx - near[..., 0:1]).abs() <= radius).float()  # [B, K, W]
    in_y = ((gy - near[..., 1:2]).abs() <= radius).float()  # [B, K, H]
    mask = in_y[..., :, None] * in_x[..., None, :] * visible.float()[..., None, None]
    dx = (c[..., 0:1] - gx).clamp(-radius - 1, radius + 1)  # clamped: far pixels are masked anyway
    dy = (c[..., 1:2] - gy).clamp(-radius - 1, radius + 1)
    targets = torch.stack([dx[..., None, :].expand(*mask.shape), dy[..., :, None].expand(*mask.shape)], 2)
    return targets * mask[:, :, None], mask


def split_outputs(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Head output [B, 3C, H, W] -> (heatmap part [B, C, H, W], offsets [B, C, 2, H, W])."""
    B, channels, H, W = outputs.shape
    if channels % 3:
        raise ValueError(f"an offset head gives 3 C channels (C heatmaps + 2 C offsets), got {channels}")
    C = channels // 3
    return outputs[:, :C], outputs[:, C:].reshape(B, C, 2, H, W)


def gather_offsets(offsets: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """offsets [B, C, 2, H, W], peaks x, y [B, C, M] long -> offsets at the peaks [B, C, M, 2]."""
    B, C, _, H, W = offsets.shape
    flat = offsets.flatten(3)  # [B, C, 2, H*W]
    index = (y * W + x)[:, :, None, :].expand(B, C, 2, x.shape[-1])
    return flat.gather(3, index).transpose(2, 3)


class OffsetCodec:
    """A heatmap codec plus offset targets (see the module docstring); `model.offset: true`.

    encode(keypoints [B, K, 2] input px, visible [B, K]) -> ((heatmaps [B, K, H, W],
    offset targets [B, K, 2, H, W], offset mask [B, K, H, W]), weights [B, K]): the inner codec's
    heatmaps and weights; offsets from the exact (unrounded) centre in heatmap px.
    decode(outputs [B, 3K, H, W], heatmap part activated) -> (keypoints [B, K, 2] input px,
    confidences [B, K]): argmax of the heatmap + the offset read there, mapped by the codec.
    Everything else (input_size, heatmap_size, to_input, flip_heatmaps, ...) is the inner codec's.
    """

    with_offsets = True

    def __init__(self, codec, radius: int = 0):
        if getattr(codec, "target_kind", "heatmap") != "heatmap":
            raise ValueError(f"model.offset needs a heatmap codec, got {type(codec).__name__}")
        if radius < 0 or radius != int(radius):
            raise ValueError(f"model.offset_radius must be a whole number >= 0, got {radius}")
        self.codec, self.radius = codec, int(radius)

    def encode(self, keypoints: torch.Tensor, visible: torch.Tensor, sizes: torch.Tensor | None = None,
               out: torch.Tensor | None = None):
        heatmaps, weights = self.codec.encode(keypoints, visible, sizes, out)
        offsets, mask = offset_targets(self.codec.to_heatmap(keypoints.float()), weights > 0,
                                       self.codec.heatmap_size, self.radius)
        return (heatmaps, offsets, mask), weights

    def decode(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, offsets = split_outputs(outputs.float())
        x, y, conf = heatmap_argmax(scores)
        shift = gather_offsets(offsets, x[..., None], y[..., None])[..., 0, :]
        return self.codec.to_input(torch.stack([x, y], -1).float() + shift), conf

    def __getattr__(self, name: str) -> Any:
        if name == "codec":
            raise AttributeError(name)
        return getattr(self.codec, name)

    def __repr__(self) -> str:
        return f"OffsetCodec({self.codec!r}, radius={self.radius})"
