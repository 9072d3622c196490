"""Regression heatmap losses from pose and face-alignment work: Adaptive Wing and OHKM MSE.

Both read the raw head output like `mse` (activation "identity"): pred, target [B, K, H, W]
with targets in [0, 1], weight None or [B, K].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kpdet.losses.base import Loss, channel_weight, check_dense, register_loss


def _check_maps(pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
    """Shapes of a [B, K, H, W] loss; returns the weight (ones when None)."""
    check_dense(pred, target, weight)
    if pred.dim() != 4:
        raise ValueError(f"pred must be [B, K, H, W] heatmaps, got {tuple(pred.shape)}")
    return pred.new_ones(pred.shape[:2]) if weight is None else weight


@register_loss("adaptive_wing", aliases=("awing",))
class AdaptiveWingLoss(Loss):
    """Adaptive Wing loss with its weighted loss map (Wang, Bo & Fuxin, ICCV 2019, Eqs. 6-9).

        d = |y - pred|,  a = alpha - y   (the exponent adapts to the target pixel)
        AWing(y, pred) = omega ln(1 + (d/eps)^a)              if d < theta
                         A d - C                              otherwise
        A = omega (1 / (1 + (theta/eps)^a)) a (theta/eps)^(a-1) (1/eps)
        C = theta A - omega ln(1 + (theta/eps)^a)
        L = (1 / (B*K*H*W)) sum_{b,k,h,w} w[b,k] * W_map * AWing,   W_map = w_map * M + 1

    A and C make the two pieces meet with equal value and slope at d = theta. M is the
    paper's mask: the target's 3x3 grey dilation, > 0.2 (a max-pool of `target > 0.2`:
    thresholding commutes with the maximum), so pixels on and just around a Gaussian get
    weight w_map + 1 = 11 and the background 1. Defaults are the paper's: omega = 14,
    theta = 0.5, eps = 1, alpha = 2.1, w_map = 10. Near a peak (y ~ 1, a ~ 1.1) the loss
    is almost L1-like, so small errors keep a large gradient; on the background (y = 0,
    a = 2.1) it is almost quadratic, so the many near-zero errors do not dominate.
    The mean runs over all pixels and channels as `mse` (weight-0 channels count in it);
    pred is used raw (activation "identity").
    """

    activation = "identity"

    def __init__(self, omega: float = 14.0, theta: float = 0.5, epsilon: float = 1.0, alpha: float = 2.1,
                 w_map: float = 10.0):
        super().__init__()
        if not (omega > 0 and theta > 0 and epsilon > 0 and alpha > 1):
            raise ValueError(f"adaptive_wing: need omega, theta, epsilon > 0 and alpha > 1, got "
                             f"omega={omega}, theta={theta}, epsilon={epsilon}, alpha={alpha}")
        self.omega, self.theta, self.epsilon = float(omega), float(theta), float(epsilon)
        self.alpha, self.w_map = float(alpha), float(w_map)

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        w = _check_maps(pred, target, weight)
        d = (target - pred).abs()
        a = self.alpha - target
        r = self.theta / self.epsilon
        r_pow = torch.pow(r, a)  # (theta/eps)^a
        slope = self.omega / (1 + r_pow) * a * torch.pow(r, a - 1) / self.epsilon  # A
        offset = self.theta * slope - self.omega * torch.log1p(r_pow)  # C
        near = self.omega * torch.log1p(torch.pow(d / self.epsilon, a))
        per_pixel = torch.where(d < self.theta, near, slope * d - offset)
        mask = F.max_pool2d((target > 0.2).to(pred.dtype), 3, stride=1, padding=1)
        per_pixel = per_pixel * (self.w_map * mask + 1)
        return (per_pixel * channel_weight(w, 4)).mean()


@register_loss("ohkm_mse")
class OHKMMSELoss(Loss):
    """MSE with online hard keypoint mining (Chen et al., Cascaded Pyramid Network, CVPR 2018,
    Sec. 3.3; MMPose KeypointOHKMMSELoss, topk=8).

        l[b,k] = w[b,k] * (1 / (H*W)) sum_{h,w} (pred - y)^2          per instance and keypoint
        L = (1/B) sum_b (1/k') sum_{k in top-k' of l[b, :]} l[b,k],    k' = min(topk, K)

    Only the k' hardest keypoints of each instance get a gradient; with topk >= K this is
    exactly `mse`. A weight-0 keypoint has l = 0 and is picked only when fewer than k'
    keypoints have a loss (then it adds 0, as in CPN). Unlike MMPose (which multiplies pred
    and target by w, so w^2) the weight multiplies the squared error once, as `mse` does;
    the two agree for 0/1 weights. pred is used raw (activation "identity").
    """

    activation = "identity"

    def __init__(self, topk: int = 8):
        super().__init__()
        if int(topk) != topk or topk < 1:
            raise ValueError(f"ohkm_mse: topk must be a positive integer, got {topk}")
        self.topk = int(topk)

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        w = _check_maps(pred, target, weight)
        per_keypoint = (pred - target).square().flatten(2).mean(2) * w  # [B, K]
        k = min(self.topk, per_keypoint.shape[1])
        return per_keypoint.topk(k, dim=1).values.mean()

