"""Ignore regions of whole-image samples: pixels that get no gradient, whatever the loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def ignore_pixels(pred: Tensor, ignore: Tensor) -> Tensor:
    """pred [B, C, h, w] head output; ignore [B, H, W] (input px, nonzero = ignore) ->
    pred with the ignored pixels detached: they add no gradient, for any loss.

    A heatmap pixel is ignored when any input pixel it covers is (area pooling > 0), so an
    ignore box is never shrunk. The loss's value still holds the (constant) terms of those
    pixels and its normaliser (MSE's mean, focal's N_pos) is unchanged: ignoring a region
    means "neither object nor background", as CenterNet/HigherHRNet's masks, not a rescale.
    """
    if not bool(ignore.any()):
        return pred
    pooled = F.adaptive_max_pool2d(ignore[:, None].float(), pred.shape[-2:]) > 0  # [B, 1, h, w]
    return torch.where(pooled, pred.detach(), pred)
