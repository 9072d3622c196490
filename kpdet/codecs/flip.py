"""Flip testing: map heatmaps predicted on a horizontally mirrored crop back to the original crop."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def shift_heatmaps_x(heatmaps: torch.Tensor, shift: float) -> torch.Tensor:
    """Move content along W by `shift` heatmap px: out[..., j] = in(j - shift), linear interpolation.

    Pixels that come from beyond the map are 0. An integer shift is exact.
    """
    n = math.floor(shift)
    f = shift - n
    out = _shift_int(heatmaps, n)
    if f > 0:
        out = (1 - f) * out + f * _shift_int(heatmaps, n + 1)
    return out


def _shift_int(x: torch.Tensor, n: int) -> torch.Tensor:
    """out[..., j] = x[..., j - n], zero-filled."""
    W = x.shape[-1]
    out = torch.zeros_like(x)
    if abs(n) >= W:
        return out
    if n >= 0:
        out[..., n:] = x[..., :W - n]
    else:
        out[..., :W + n] = x[..., -n:]
    return out


def flip_heatmaps(heatmaps: torch.Tensor, flip_index: Sequence[int], shift: float = 0.0) -> torch.Tensor:
    """Heatmaps [B, K, H, W] of a mirrored crop -> heatmaps of the original crop [B, K, H, W].

    Mirror W, take channel flip_index[k] for keypoint k (the left/right partner), then shift
    by `shift` heatmap px along x: the codec's mismatch between mirroring the input
    (x -> W_in - 1 - x) and mirroring the heatmap (u -> W - 1 - u); 0 for UDP.
    """
    index = torch.as_tensor(list(flip_index), device=heatmaps.device, dtype=torch.long)
    out = heatmaps.flip(-1).index_select(1, index)
    return shift_heatmaps_x(out, shift) if shift else out


def flip_displacements(fields: torch.Tensor, flip_index: Sequence[int], shift: float = 0.0) -> torch.Tensor:
    """Vector fields [B, K, 2, H, W] (dx, dy in heatmap px) of a mirrored image -> the original's.

    The maps move as `flip_heatmaps` moves them (mirror W, channel flip_index[k], shift), and dx
    changes sign: a vector pointing right in the mirror points left in the original. Moving the
    field by linear interpolation equals moving the absolute positions n + d it encodes, since
    interpolating the pixel coordinate n itself is exact.
    """
    out = flip_heatmaps(fields, flip_index, shift)
    return out * out.new_tensor([-1.0, 1.0])[:, None, None]
