"""Heatmap losses: distance-aware focal (CornerNet), quality focal (GFL) and MSE (MMPose KeypointMSELoss)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kpdet.losses._fused import chunked_rows
from kpdet.losses.base import Loss, check_dense, register_loss


def _pow_(x: Tensor, k: float) -> Tensor:
    """x ** k in place; k = 1, 2, 4, 8 by squaring, k = 3 by multiplying (ATen's pow with a
    float exponent such as 4.0 is ~30x slower than a multiply on CPU)."""
    if k in (1, 2, 4, 8):
        for _ in range(int(k).bit_length() - 1):
            x.square_()
        return x
    if k == 3:
        return x.mul_(x.square())
    return x.pow_(k)


def _mul_pow_(out: Tensor, x: Tensor, k: float) -> Tensor:
    """out *= x ** k in place without a temporary for integer k in [0, 8]."""
    if k == int(k) and 0 <= k <= 8:
        for _ in range(int(k)):
            out.mul_(x)
        return out
    return out.mul_(x.pow(k))


def _softplus(x: Tensor) -> Tensor:
    """softplus(x) = -log(1 - sigmoid(x)) = max(x, 0) + log1p(exp(-|x|)): exact for any finite
    x; on CPU faster than F.logsigmoid(-x), which also fills a buffer for its backward."""
    return torch.log1p(x.abs().neg_().exp_()).add_(x.clamp(min=0))


def _negative_chunk(x: Tensor, y: Tensor, w: Tensor, alpha: float, beta: float, grad: Tensor) -> Tensor:
    """Negative-branch losses of one chunk: returns their sum, writes their d/dx into `grad`.

        loss = -w (1-y)^beta p^alpha log(1-p) = m softplus(x),     m = w (1-y)^beta p^alpha
        d loss/dx = m (p + alpha (1-p) softplus(x))

    x, y, grad: [rows, HW]; w: [rows, 1]. At y == 1 the factor (1-y)^beta is 0 (beta > 0),
    so positives contribute exactly 0 here and are handled by `_positive_terms`.
    """
    p = torch.sigmoid(x)
    sp = _softplus(x)
    m = _pow_(torch.sub(1, y), beta)
    if beta == 0:
        m.masked_fill_(y == 1, 0.0)
    _mul_pow_(m.mul_(w), p, alpha)
    torch.mul(torch.addcmul(p, torch.sub(1, p), sp, value=alpha), m, out=grad)
    return torch.dot(m.view(-1), sp.view(-1))


def _positive_terms(x: Tensor, w: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """Positive-branch losses -(1-p)^alpha log p and their d/dx at the (few) pixels with y == 1.

        d/dx = -(1-p)^alpha ((1-p) - alpha p log p),  with 1-p = sigmoid(-x), log p = logsigmoid(x).
    x, w: [P]. Returns (sum of w * losses, w * d/dx).
    """
    log_p, q = F.logsigmoid(x), torch.sigmoid(-x)
    m = _mul_pow_(w.clone(), q, alpha)
    return -torch.dot(m, log_p), m * (alpha * torch.sigmoid(x) * log_p - q)


class _DistanceAwareFocal(torch.autograd.Function):
    """Fused value and hand-written gradient: the gradient is computed in the forward pass
    (chunked, in cache) and is the only saved tensor; backward scales it."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, w: Tensor, alpha: float, beta: float) -> Tensor:
        n_pos = x.new_zeros(())

        def chunk(xs: Tensor, ys: Tensor, ws: Tensor, grad: Tensor) -> Tensor:
            nonlocal n_pos
            total = _negative_chunk(xs, ys, ws, alpha, beta, grad)
            # positives (about one per channel) are found while the chunk is in cache
            pos = (ys == 1).view(-1).nonzero().squeeze(1)
            w_pos = ws.view(-1)[pos // ys.shape[1]]
            pos_total, pos_grad = _positive_terms(xs.reshape(-1)[pos], w_pos, alpha)
            grad.view(-1)[pos] = pos_grad
            n_pos = n_pos + w_pos.sum()
            return total + pos_total

        total, grad = chunked_rows(x, y, w, chunk)
        ctx.save_for_backward(grad)
        ctx.scale, ctx.shape = 1.0 / n_pos.clamp_min(1.0), x.shape
        return total * ctx.scale

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        (grad,) = ctx.saved_tensors
        return (grad * (grad_out * ctx.scale)).view(ctx.shape), None, None, None, None


@register_loss("distance_aware_focal", aliases=("daf",))
class DistanceAwareFocalLoss(Loss):
    """Penalty-reduced pixel-wise focal loss (Law & Deng, CornerNet, ECCV 2018, Eq. 1).

        L = -(1/N_pos) sum_{b,c,h,w} w[b,c] * { (1-p)^alpha log p               if y == 1
                                               { (1-y)^beta p^alpha log(1-p)     otherwise
        p = sigmoid(pred), N_pos = max(1, sum of w[b,c] over elements with y == 1)

    log p = logsigmoid(pred) and log(1-p) = -softplus(pred), in log space: no clamp of p
    (unlike CornerNet/CenterNet's `_sigmoid`), finite for any finite logit. N_pos counts
    over the whole batch. pred, target: [B, C, H, W]; weight: None or [B, C]. The gradient
    is hand-written (d/d target is not computed: targets are data).

    Starts at the base prior 0.1 (final bias -2.2, CenterNet's). p = 0.01 (`model.final_bias=-4.6`)
    parts the first openfield steps faster but costs AP on the synthetic set; docs/focal.md.
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


def _abs_pow_and_slope(d: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """|d|^beta and its derivative beta |d|^(beta-1) sign(d), taken as 0 at d == 0 (for beta < 1
    the derivative there is infinite; 0 is the subgradient that keeps the sum finite)."""
    if beta == 2:
        return d.square(), 2 * d
    if beta == 0:
        return torch.ones_like(d), torch.zeros_like(d)
    a = d.abs()
    slope = beta * a.pow(beta - 1) * d.sign()
    return a.pow(beta), slope if beta >= 1 else torch.where(d == 0, 0.0, slope)


def _qfl_chunk(x: Tensor, y: Tensor, w: Tensor, beta: float, grad: Tensor) -> Tensor:
    """QFL terms of one chunk: returns their w-weighted sum, writes their d/dx into `grad`.

        ce = -(y log p + (1-y) log(1-p)) = y softplus(-x) + (1-y) softplus(x),  d ce/dx = p - y
        d/dx [w |p-y|^beta ce] = w (beta |p-y|^(beta-1) sign(p-y) p (1-p) ce + |p-y|^beta (p-y))

    x, y, grad: [rows, HW]; w: [rows, 1]. Both ce terms are >= 0: no cancellation.
    """
    p, q = torch.sigmoid(x), torch.sigmoid(-x)  # q = 1-p without rounding near p = 1
    ce = _softplus(x.neg()).mul_(y).add_(_softplus(x).mul_(torch.sub(1, y)))
    d = p - y
    modulator, slope = _abs_pow_and_slope(d, beta)
    total = torch.dot((modulator * ce).sum(1), w.view(-1))
    torch.mul(slope.mul_(p).mul_(q).mul_(ce).add_(modulator.mul_(d)), w, out=grad)
    return total


class _QualityFocal(torch.autograd.Function):
    """Value and hand-written gradient in one chunked pass, as `_DistanceAwareFocal`; only the
    gradient is saved, backward scales it."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, w: Tensor, beta: float) -> Tensor:
        total, grad = chunked_rows(x, y, w, lambda xs, ys, ws, g: _qfl_chunk(xs, ys, ws, beta, g))
        n_pos = (w * (y.flatten(2).amax(2) > 0)).sum()  # keypoints: channels with a target
        ctx.save_for_backward(grad)
        ctx.scale, ctx.shape = 1.0 / n_pos.clamp_min(1.0), x.shape
        return total * ctx.scale

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        (grad,) = ctx.saved_tensors
        return (grad * (grad_out * ctx.scale)).view(ctx.shape), None, None, None


@register_loss("quality_focal", aliases=("qfl",))
class QualityFocalLoss(Loss):
    """Quality Focal Loss with the Gaussian heatmap as the soft target (Li et al., Generalized
    Focal Loss, NeurIPS 2020, its QFL: -|y - p|^beta ((1-y) log(1-p) + y log p)).

        L = (1/N_pos) sum_{b,c,h,w} w[b,c] |y - p|^beta * -((1-y) log(1-p) + y log p)
        p = sigmoid(pred), N_pos = max(1, sum of w[b,c] over channels whose target is not all 0)

    Every pixel is a soft positive of quality y (the Gaussian value): binary cross-entropy
    against y, scaled by how far p is from y, so the loss is 0 only at p == y and easy pixels
    (background far from any keypoint, p ~ 0) fade out as in the focal loss.
    N_pos counts keypoints, as GFL divides by the number of positive locations: it equals
    distance_aware_focal's N_pos whenever each target channel has exactly one pixel at 1.0
    (msra, or any codec with one_positive), so the two losses are on the same scale; unlike
    counting y == 1 it does not depend on the codec putting an exact 1.0 anywhere (DARK/UDP
    targets peak below 1). Dividing by sum y instead would scale the loss with sigma^2.
    log p = logsigmoid(pred), log(1-p) = logsigmoid(-pred): no clamp, finite for any finite
    logit. pred, target: [B, C, H, W]; weight: None or [B, C] (every term of channel (b, c)
    times w[b,c]). beta = 0 gives plain binary cross-entropy against the soft target.
    """

    activation = "sigmoid"

    def __init__(self, beta: float = 2.0):
        super().__init__()
        if beta < 0:
            raise ValueError(f"quality_focal: beta must be >= 0, got {beta}")
        self.beta = float(beta)

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        check_dense(pred, target, weight)
        if pred.dim() < 3:
            raise ValueError(f"pred must be [B, C, ...] with spatial dims, got {tuple(pred.shape)}")
        w = pred.new_ones(pred.shape[:2]) if weight is None else weight
        return _QualityFocal.apply(pred.contiguous(), target.contiguous(), w, self.beta)


class _WeightedMSE(torch.autograd.Function):
    """mean of w[b,c] (x - y)^2 with one temporary (x - y), reused by the backward."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, w: Tensor) -> Tensor:
        d = (x - y).reshape(x.shape[0] * x.shape[1], 1, -1)  # [B*C, 1, HW]
        if x.device.type == "cpu":  # sum_hw d^2 per channel without a second temporary
            per = torch.bmm(d, d.transpose(1, 2)).view(-1)
        else:  # no matmul on GPU, where TF32 may be switched on and would round the sum
            per = d.square().sum((1, 2))
        ctx.save_for_backward(d, w)
        ctx.shape = x.shape
        return torch.dot(per, w.reshape(-1)) / x.numel()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        d, w = ctx.saved_tensors
        scale = w.reshape(-1, 1, 1) * (grad_out * (2.0 / d.numel()))
        return (d * scale).view(ctx.shape), None, None


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
        return _WeightedMSE.apply(pred, target, weight)
