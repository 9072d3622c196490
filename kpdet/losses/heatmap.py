"""Heatmap losses: distance-aware focal (CornerNet) and MSE (MMPose KeypointMSELoss)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kpdet.losses.base import Loss, channel_weight, check_dense, register_loss

# Elements per chunk of the fused focal pass: temporaries of one chunk (~6 x 1 MiB
# in float32) stay in L2/L3 cache, and a few dozen chunks keep Python overhead small.
_CHUNK = 1 << 18


def _focal_chunk(x: Tensor, y: Tensor, alpha: float, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per-element focal term and its d/dx for one chunk (no autograd).

    With pos = (y == 1), t = x on positives and -x on negatives, so that both cases read
        term = m * sigmoid(-t)^alpha * logsigmoid(t),   m = 1 (pos) or (1 - y)^beta (neg),
        d term / dt = m * sigmoid(-t)^alpha * (sigmoid(-t) - alpha * sigmoid(t) * logsigmoid(t)),
    and d/dx = +-d/dt. Returns (term, dterm/dx, pos) with the chunk's shape.
    """
    pos = y == 1
    t = torch.where(pos, x, -x)
    log_s = F.logsigmoid(t)
    u = torch.sigmoid(-t)
    mod = u.pow(alpha)
    m = torch.where(pos, 1.0, (1 - y).pow(beta))
    term = mod.mul_(m)  # m * u^alpha, reused for the gradient
    grad = u.sub_(torch.exp(log_s).mul_(log_s).mul_(alpha)).mul_(term)
    grad = torch.where(pos, grad, -grad)
    return term.mul_(log_s), grad, pos


class _DistanceAwareFocal(torch.autograd.Function):
    """Fused value and hand-written gradient: one saved tensor, chunked temporaries."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, w: Tensor, alpha: float, beta: float) -> Tensor:
        rows_x, rows_y = x.reshape(-1, x[0, 0].numel()), y.reshape(-1, y[0, 0].numel())
        rows_w = w.reshape(-1, 1)
        grad = torch.empty_like(rows_x)
        total, n_pos = x.new_zeros(()), x.new_zeros(())
        step = max(1, _CHUNK // rows_x.shape[1])
        for i in range(0, rows_x.shape[0], step):
            sl = slice(i, i + step)
            term, g, pos = _focal_chunk(rows_x[sl], rows_y[sl], alpha, beta)
            total += (term.sum(1, keepdim=True) * rows_w[sl]).sum()
            n_pos += (pos.sum(1, keepdim=True) * rows_w[sl]).sum()
            torch.mul(g, rows_w[sl], out=grad[sl])
        scale = -1.0 / n_pos.clamp_min(1.0)
        ctx.save_for_backward(grad, scale)
        ctx.shape = x.shape
        return total * scale

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        grad, scale = ctx.saved_tensors
        return (grad * (grad_out * scale)).reshape(ctx.shape), None, None, None, None


@register_loss("distance_aware_focal", aliases=("daf",))
class DistanceAwareFocalLoss(Loss):
    """Penalty-reduced pixel-wise focal loss (Law & Deng, CornerNet, ECCV 2018, Eq. 1).

        L = -(1/N_pos) sum_{b,c,h,w} w[b,c] * { (1-p)^alpha log p               if y == 1
                                               { (1-y)^beta p^alpha log(1-p)     otherwise
        p = sigmoid(pred), N_pos = max(1, sum of w[b,c] over elements with y == 1)

    log p = logsigmoid(pred) and log(1-p) = logsigmoid(-pred): no clamp of p (unlike
    CornerNet/CenterNet's `_sigmoid`), finite for any finite logit. N_pos counts over
    the whole batch. pred, target: [B, C, H, W]; weight: None or [B, C]. The gradient
    is hand-written (d/d target is not computed: targets are data).
    """

    activation = "sigmoid"

    def __init__(self, alpha: float = 2.0, beta: float = 4.0):
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        check_dense(pred, target, weight)
        if pred.dim() < 3:
            raise ValueError(f"pred must be [B, C, ...] with spatial dims, got {tuple(pred.shape)}")
        w = pred.new_ones(pred.shape[:2]) if weight is None else weight
        return _DistanceAwareFocal.apply(pred.contiguous(), target.contiguous(), w, self.alpha, self.beta)


@register_loss("mse")
class MSELoss(Loss):
    """Weighted mean squared error (MMPose KeypointMSELoss, use_target_weight).

        L = (1 / (B*C*H*W)) sum_{b,c,h,w} w[b,c] * (pred - y)^2,   w = 1 when weight is None

    Channels with weight 0 still count in the mean. pred is used raw (activation "identity").
    """

    activation = "identity"

    def __init__(self):
        super().__init__()

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        check_dense(pred, target, weight)
        if weight is None:
            return F.mse_loss(pred, target)
        sq = F.mse_loss(pred, target, reduction="none")
        return (sq * channel_weight(weight, pred.dim())).mean()
