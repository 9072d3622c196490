"""The heatmap loss plus an L1 loss on the offset head (CenterNet `reg`/`hp_offset`, DeepLabCut locref)."""
from __future__ import annotations

from torch import Tensor, nn


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """sum m (|p_x - t_x| + |p_y - t_y|) / (2 max(1, sum m)); pred, target [B, C, 2, H, W], mask [B, C, H, W]:
    the mean absolute error per coordinate over the masked pixels."""
    error = (pred.float() - target).abs().sum(2)
    return (error * mask).sum() / (2 * mask.sum().clamp_min(1.0))


class HeatmapPlusRegression(nn.Module):
    """A heatmap loss plus `weight` x a regression term (offsets, displacements); the wrapper shows the
    heatmap loss's `activation` (and `mode`, `prior`) so predictors and the prior bias see through it."""

    def __init__(self, heatmap_loss: nn.Module, weight: float = 1.0):
        super().__init__()
        self.heatmap = heatmap_loss
        self.weight = float(weight)
        self.activation = heatmap_loss.activation
        for name in ("mode", "prior"):
            if hasattr(heatmap_loss, name):
                setattr(self, name, getattr(heatmap_loss, name))


class WithOffsetLoss(HeatmapPlusRegression):
    """L = heatmap_loss(pred[:, :C], heatmaps, w) + weight * L1, with

        L1 = sum_{b,c,p} m[b,c,p] w[b,c] (|o_x - t_x| + |o_y - t_y|) / (2 max(1, sum_{b,c,p} m w))

    the mean absolute offset error per coordinate over the trained pixels (CenterNet's RegL1Loss
    divides by the mask expanded over both coordinates, the same mean).

    pred [B, 3C, H, W]: C heatmap logits then C (dx, dy) pairs (kpdet.codecs.offset);
    target = (heatmaps [B, C, H, W], offset targets t [B, C, 2, H, W], mask m [B, C, H, W]);
    weight w: None or [B, C]. `activation` (and `mode`, `prior`) are the heatmap loss's.
    """

    def forward(self, pred: Tensor, target, weight: Tensor | None = None) -> Tensor:
        heatmaps, offsets, mask = target
        B, C, H, W = heatmaps.shape
        if pred.shape[1] != 3 * C:
            raise ValueError(f"pred has {pred.shape[1]} channels; an offset head for {C} heatmaps gives "
                             f"{3 * C}")
        m = mask if weight is None else mask * weight[:, :, None, None]
        l1 = masked_l1(pred[:, C:].view(B, C, 2, H, W), offsets, m)
        return self.heatmap(pred[:, :C], heatmaps, weight) + self.weight * l1
