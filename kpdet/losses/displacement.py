"""Multi-instance pose loss: the heatmap loss (with or without offsets) plus CenterNet's displacement L1."""
from __future__ import annotations

from torch import Tensor

from kpdet.losses.offset import HeatmapPlusRegression, masked_l1


class WithDisplacementLoss(HeatmapPlusRegression):
    """L = heatmap_loss(pred[:, :-2K], heatmap targets, w) + weight * L1, with

        L1 = sum_{b,k,p} m (|o_x - t_x| + |o_y - t_y|) / (2 max(1, sum m))

    over the displacement channels pred[:, -2K:] (kpdet.codecs.pose: keypoint - centre pixel,
    heatmap px, trained at each instance's centre pixel; CenterNet's `hps` RegL1 loss).
    target = (heatmap targets, displacement targets t [B, K, 2, H, W], mask m [B, K, H, W]).
    `activation` (and `mode`, `prior`) are the heatmap loss's.
    """

    def forward(self, pred: Tensor, target, weight: Tensor | None = None) -> Tensor:
        heat_targets, displacements, mask = target
        B, K, _, H, W = displacements.shape
        l1 = masked_l1(pred[:, -2 * K:].view(B, K, 2, H, W), displacements, mask)
        return self.heatmap(pred[:, :-2 * K], heat_targets, weight) + self.weight * l1
