"""Segmentation-family losses applied to heatmaps: pixelwise (ce, wce, dce, focal, dual_focal)
and region (dice, generalized_dice, pointwise_exponential).

Modes: "multilabel" (sigmoid per channel; each channel is its own two-class problem with
z = (p, 1-p), y = (y, 1-y)) or "multiclass" (softmax over C; target one-hot/probabilities
[B, C, H, W] or class indices [B, H, W]). Pixelwise: L = mean_n sum_i l(z_in, y_in).
Region losses are computed per (sample, channel), then averaged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kpdet.losses._fused import fused_mean, sigmoid_parts
from kpdet.losses._logspace import log1m_softmax
from kpdet.losses.base import Loss, channel_weight, register_loss

MODES = ("multilabel", "multiclass")


class SegmentationLoss(Loss):
    """Base: validates `mode`, sets `activation`, turns targets into [B, C, ...] floats."""

    def __init__(self, mode: str = "multilabel"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"{type(self).__name__}: mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.activation = "sigmoid" if mode == "multilabel" else "softmax"

    def dense_target(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        """Check shapes; class indices [B, H, W] -> one-hot [B, C, H, W] in pred's dtype."""
        if self.mode == "multiclass":
            if weight is not None:
                raise ValueError("weight must be None in multiclass mode (it is per channel = per class)")
            if pred.shape[1] < 2:
                raise ValueError(f"multiclass mode needs C >= 2 channels, got {pred.shape[1]}")
            if not target.is_floating_point():
                if target.shape != pred.shape[:1] + pred.shape[2:]:
                    raise ValueError(f"index target {tuple(target.shape)} vs pred {tuple(pred.shape)}")
                return F.one_hot(target.long(), pred.shape[1]).movedim(-1, 1).to(pred.dtype)
        if target.shape != pred.shape:
            raise ValueError(f"target shape {tuple(target.shape)} != pred shape {tuple(pred.shape)}")
        if weight is not None and weight.shape != pred.shape[:2]:
            raise ValueError(f"weight shape {tuple(weight.shape)} != [B, C] = {tuple(pred.shape[:2])}")
        return target.to(pred.dtype)


def _ipow(x: Tensor, k: float) -> Tensor:
    """x ** k; k = 1, 2, 3 by multiplication (CPU pow with a float exponent is ~30x slower)."""
    if k == 1:
        return x
    if k == 2:
        return x * x
    if k == 3:
        return x * x * x
    return x.pow(k)


class PixelwiseLoss(SegmentationLoss):
    """L = mean over pixels of sum over the class axis of `term(log z, log(1-z), z, y)`.

    Multilabel: sum over the two classes (p, y) and (1-p, 1-y) of every element, mean over
    B*C*H*W, each term of channel (b, c) times w[b, c]. Multiclass: sum over C, mean over B*H*W.
    """

    uses_log_1mz = True  # False: multiclass mode skips the log(1 - z) pass

    def term(self, log_z: Tensor, log_1mz: Tensor | None, z: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def binary(self, pred: Tensor, y: Tensor) -> Tensor:
        """Multilabel per-element loss: term over (p, y) plus term over (1-p, 1-y). Used for
        inputs without spatial dims; [B, C, H, W] inputs take the fused `binary_value_grad`
        (same sum in closed form with a hand-written gradient) when a loss defines it."""
        log_p, log_q = F.logsigmoid(pred), F.logsigmoid(-pred)  # log p, log(1-p)
        return self.term(log_p, log_q, log_p.exp(), y) + self.term(log_q, log_p, log_q.exp(), 1 - y)

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        y = self.dense_target(pred, target, weight)
        if self.mode == "multiclass":
            log_z = F.log_softmax(pred, 1)
            log_1mz = log1m_softmax(pred, 1) if self.uses_log_1mz else None
            return self.term(log_z, log_1mz, log_z.exp(), y).sum(1).mean()
        if hasattr(self, "binary_value_grad") and pred.dim() >= 3:
            return fused_mean(pred, y, weight, self.binary_value_grad)
        per = self.binary(pred, y)
        if weight is not None:
            per = per * channel_weight(weight, pred.dim())
        return per.mean()


@register_loss("ce")
class CrossEntropyLoss(PixelwiseLoss):
    """Cross-entropy: l = sum_i -y_i log z_i (binary CE with logits in multilabel mode)."""

    uses_log_1mz = False

    def term(self, log_z, log_1mz, z, y):
        return -y * log_z

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        # torch's fused kernels compute exactly these sums in log space, faster than the generic path
        y = self.dense_target(pred, target, weight)
        if self.mode == "multiclass":
            return F.cross_entropy(pred, y)  # probability targets: mean over B*H*W of sum_i -y_i log z_i
        w = None if weight is None else channel_weight(weight, pred.dim())
        return F.binary_cross_entropy_with_logits(pred, y, weight=w)


@register_loss("wce")
class WeightedCrossEntropyLoss(PixelwiseLoss):
    """Class-weighted cross-entropy, multiclass only: l = sum_i -w_i y_i log z_i, plain mean over pixels.

    class_weights: list of C floats, or "inverse_frequency": w_c = (B*H*W) / (C * max(1, sum_n y_nc))
    on the current batch (Long et al./Ronneberger et al. style class balancing). Not PyTorch's
    weighted mean (which divides by sum_n w_{y_n}).
    """

    def __init__(self, class_weights: list[float] | str = "inverse_frequency", mode: str = "multiclass"):
        super().__init__(mode)
        if mode != "multiclass":
            raise ValueError("wce is defined for mode='multiclass' only")
        if isinstance(class_weights, str) and class_weights != "inverse_frequency":
            raise ValueError(f"wce: class_weights: a list or 'inverse_frequency', not {class_weights!r}")
        self.class_weights = class_weights

    def weights(self, y: Tensor) -> Tensor:
        """[C] class weights in y's dtype/device."""
        C = y.shape[1]
        if isinstance(self.class_weights, str):
            n_pix = y.numel() // C
            return n_pix / (C * y.detach().transpose(0, 1).reshape(C, -1).sum(1).clamp_min(1.0))
        if len(self.class_weights) != C:
            raise ValueError(f"wce: {len(self.class_weights)} class_weights for {C} classes")
        return torch.as_tensor(self.class_weights, dtype=y.dtype, device=y.device)

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        y = self.dense_target(pred, target, weight)
        # probability targets with weight: sum_i -w_i y_i log z_i per pixel, mean over B*H*W
        return F.cross_entropy(pred, y, weight=self.weights(y))


@register_loss("dce")
class DualCrossEntropyLoss(PixelwiseLoss):
    """Dual cross-entropy (Li et al., "Dual Cross-Entropy Loss for Small-Sample Fine-Grained
    Vehicle Classification", IEEE TVT 2019): l = sum_i [ -y_i log z_i + beta (1-y_i) log(alpha + z_i) ].
    """

    uses_log_1mz = False

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, mode: str = "multilabel"):
        super().__init__(mode)
        if alpha < 0:
            raise ValueError(f"dce: alpha must be >= 0, got {alpha}")
        self.alpha, self.beta = float(alpha), float(beta)

    def term(self, log_z, log_1mz, z, y):
        log_az = log_z if self.alpha == 0 else torch.log(self.alpha + z)  # alpha = 0: stay in log space
        return -y * log_z + self.beta * (1 - y) * log_az

    def binary_value_grad(self, x, y):
        """v = bce + beta [(1-y) log(a + p) + y log(a + 1 - p)],  bce = -(y log p + (1-y) log(1-p)),
        dv/dx = (p - y) + beta p q [(1-y)/(a + p) - y/(a + 1 - p)]   (a = alpha > 0; a = 0 uses log space)."""
        p, q, log_p, log_q = sigmoid_parts(x)
        a, b = self.alpha, self.beta
        if a == 0:
            pen = ((1 - y) * log_p).add_(y * log_q)
            dpen = (1 - y) * q - y * p
        else:
            pen = ((1 - y) * torch.log(a + p)).add_(y * torch.log(a + q))
            dpen = p * q * ((1 - y) / (a + p) - y / (a + q))
        v = (y * log_p).add_((1 - y) * log_q).neg_().add_(pen.mul_(b))
        return v, (p - y).add_(dpen.mul_(b))


@register_loss("focal", aliases=("fl",))
class FocalLoss(PixelwiseLoss):
    """Focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017), per class term:
    l = sum_i -alpha (1-z_i)^gamma y_i log z_i; alpha is a global scale (not Lin's alpha_t).
    (1-z)^gamma = exp(gamma log(1-z)) with log(1-z) from the logits.
    """

    def __init__(self, alpha: float = 1.0, gamma: float = 2.0, mode: str = "multilabel"):
        super().__init__(mode)
        self.alpha, self.gamma = float(alpha), float(gamma)

    def term(self, log_z, log_1mz, z, y):
        return -self.alpha * torch.exp(self.gamma * log_1mz) * y * log_z

    def binary_value_grad(self, x, y):
        """v = -alpha [ y q^g log p + (1-y) p^g log q ],  q = 1-p,
        dv/dx = -alpha [ y q^g (q - g p log p) + (1-y) p^g (g q log q - p) ]."""
        p, q, log_p, log_q = sigmoid_parts(x)
        g, a = self.gamma, self.alpha
        qg, pg = _ipow(q, g) * y, _ipow(p, g) * (1 - y)
        v = (qg * log_p).add_(pg * log_q).mul_(-a)
        d = (qg * (q - g * p * log_p)).add_(pg * (g * q * log_q - p)).mul_(-a)
        return v, d


@register_loss("dual_focal", aliases=("dfl",))
class DualFocalLoss(PixelwiseLoss):
    """Dual focal loss (Hossain et al., "Dual Focal Loss to address class imbalance in semantic
    segmentation", Neurocomputing 2021; Eq. 7 and Eq. B.2):
        l = sum_i [ -y_i log z_i - beta (1-y_i) log(rho - z_i) + alpha |y_i - z_i|^gamma ].
    The alpha term is added (see CONTRACT.md). rho = 1 uses log(1-z) from the logits; rho >= 1.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0, rho: float = 1.0,
                 mode: str = "multilabel"):
        super().__init__(mode)
        if rho < 1:
            raise ValueError(f"dual_focal: rho must be >= 1 (log(rho - z) of z in [0, 1]), got {rho}")
        self.alpha, self.beta, self.gamma, self.rho = float(alpha), float(beta), float(gamma), float(rho)
        self.uses_log_1mz = self.rho == 1

    def term(self, log_z, log_1mz, z, y):
        log_rz = log_1mz if self.rho == 1 else torch.log(self.rho - z)
        return -y * log_z - self.beta * (1 - y) * log_rz + self.alpha * (y - z).abs().pow(self.gamma)

    def binary_value_grad(self, x, y):
        """Both classes summed (|(1-y) - (1-p)| = |y - p|, so the alpha term appears twice):
            v = bce - beta [(1-y) log(rho - p) + y log(rho - 1 + p)] + 2 alpha |y - p|^g
        with bce = -(y log p + (1-y) log(1-p)), d bce/dx = p - y, dp/dx = p q; for rho = 1 the
        beta term is beta * bce (log space)."""
        p, q, log_p, log_q = sigmoid_parts(x)
        b, g, rho = self.beta, self.gamma, self.rho
        bce = (y * log_p).add_((1 - y) * log_q).neg_()
        d = p - y
        if rho == 1:
            v, dv = bce.mul_(1 + b), d * (1 + b)
        else:
            pq = p * q
            v = bce.sub_(((1 - y) * torch.log(rho - p)).add_(y * torch.log((rho - 1) + p)).mul_(b))
            dv = d - b * pq * (y / ((rho - 1) + p) - (1 - y) / (rho - p))
        ad = d.abs()
        v += 2 * self.alpha * _ipow(ad, g)
        # d/dx |p - y|^g = g |p - y|^(g-1) sign(p - y) p q; zero where p == y (also for g < 1)
        slope = torch.where(ad > 0, g * _ipow(ad, g - 1), 0.0) if g != 1 else torch.ones_like(ad)
        dv += 2 * self.alpha * slope * d.sign() * p * q
        return v, dv


class RegionLoss(SegmentationLoss):
    """Per-(sample, channel) losses [B, C] from p = activation(pred) and g, then their
    (w-weighted) mean. Sums run over the spatial dims of each (sample, channel)."""

    def region(self, p: Tensor, g: Tensor) -> Tensor:
        raise NotImplementedError

    def probs(self, pred: Tensor) -> Tensor:
        return torch.sigmoid(pred) if self.mode == "multilabel" else torch.softmax(pred, 1)

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        g = self.dense_target(pred, target, weight)
        losses = self.region(self.probs(pred), g)
        if weight is None:
            return losses.mean()
        return (losses * weight).sum() / weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)


def _spatial_sum(x: Tensor) -> Tensor:
    """[B, C, ...] -> [B, C]."""
    return x.flatten(2).sum(2)


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num / den with den floored at the smallest normal float: only 0/0 (no target, p
    underflowed to 0) is changed, to 0."""
    return num / den.clamp_min(torch.finfo(den.dtype).tiny)


@register_loss("dice")
class DiceLoss(RegionLoss):
    """Soft Dice loss (Milletari et al., V-Net, 3DV 2016; MONAI DiceLoss smooth_nr = smooth_dr = s):
    L_bc = 1 - (2 sum pg + s) / (sum p + sum g + s).
    """

    def __init__(self, smooth: float = 1e-5, mode: str = "multilabel"):
        super().__init__(mode)
        self.smooth = float(smooth)

    def region(self, p, g):
        inter, total = _spatial_sum(p * g), _spatial_sum(p + g)
        return 1 - _safe_div(2 * inter + self.smooth, total + self.smooth)


@register_loss("pointwise_exponential", aliases=("pel",))
class PointwiseExponentialLoss(RegionLoss):
    """PointWise-Exponential loss (expanded formula of the PointWise-Exponential-Loss README):
    L_bc = 1 - sum p^n g / (sum pg + sum p(1-g) + sum (1-p)g); the denominator equals
    sum p + sum g - sum pg (the two forms differ by rounding only).
    """

    def __init__(self, n: float = 2.0, mode: str = "multilabel"):
        super().__init__(mode)
        self.n = float(n)

    def region(self, p, g):
        pg = _spatial_sum(p * g)
        num = _spatial_sum(_ipow(p, self.n) * g)
        return 1 - _safe_div(num, _spatial_sum(p) + _spatial_sum(g) - pg)


@register_loss("generalized_dice", aliases=("gdl",))
class GeneralizedDiceLoss(RegionLoss):
    """Generalised Dice loss (Sudre et al., DLMIA 2017), per sample b:
        L_b = 1 - 2 sum_l w_l sum_n g p / sum_l w_l sum_n (g + p),  w_l = 1 / (sum_n g_l)^2,
    no smoothing. A class absent from the sample gets the largest finite w_l of that sample
    (as MONAI); a sample with no class present gets w_l = 1 (loss 1, zero gradient).
    With weight [B, C]: w_l -> w[b, l] * w_l (max over channels with w > 0) and the batch mean
    is weighted by sum_l w[b, l]. Without weight: plain mean over samples.
    """

    def __init__(self, mode: str = "multilabel"):
        super().__init__(mode)

    def class_weights(self, g_sum: Tensor, weight: Tensor) -> Tensor:
        """[B, C] Sudre weights 1/G^2, absent classes filled per sample, times `weight`."""
        w = 1.0 / g_sum.square()
        finite = torch.isfinite(w) & (weight > 0)
        w_max = torch.where(finite, w, 0.0).amax(1, keepdim=True)
        w_max = torch.where(finite.any(1, keepdim=True), w_max, 1.0)
        return torch.where(torch.isfinite(w), w, w_max) * weight

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        g = self.dense_target(pred, target, weight)
        p = self.probs(pred)
        wc = pred.new_ones(pred.shape[:2]) if weight is None else weight
        w = self.class_weights(_spatial_sum(g).detach(), wc)
        num = 2 * (w * _spatial_sum(p * g)).sum(1)
        den = (w * _spatial_sum(p + g)).sum(1)
        losses = 1 - _safe_div(num, den)  # [B]
        if weight is None:
            return losses.mean()
        s = weight.sum(1)
        return (losses * s).sum() / s.sum().clamp_min(torch.finfo(s.dtype).tiny)
