"""Losses over a trailing bins axis (the ordinal_xy head): squared EMD, cross entropy, KL divergence.

Each takes pred logits [..., N], a target of bin indices [...] (long) or distributions
[..., N], and an optional weight broadcastable to the leading dims from the left (e.g. [B, K]),
giving a weighted mean over rows. `target_form` is the target each loss is meant for ("index"
or "distribution"): the engine asks the ordinal_xy codec for it. `XYLoss` sums one of them
over the x and y logits of the head.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from kpdet.losses.base import Loss, register_loss


@register_loss("squared_emd", aliases=("emd2",))
class SquaredEMDLoss(Loss):
    """Squared EMD between ordinal distributions (Hou, Yu & Samaras, "Squared Earth Mover's
    Distance-based Loss for Training Deep Neural Networks", 2016), ground distance |i - j|:

        L = mean over leading dims of sum_k (CDF(softmax(x))_k - CDF(t)_k)^2

    (sum over the K bins: no 1/K factor, no square root). pred: logits [..., K]; target:
    integer bins [...] or distributions [..., K]; weight: None or a tensor broadcastable to
    the leading dims from the left (e.g. [B, C] for pred [B, C, H, K]), giving a weighted mean.
    """

    activation = "softmax"  # over the last (bins) axis
    target_kind = "ordinal"
    target_form = "index"  # Hou et al.: one-hot labels; Gaussian distributions work too

    def __init__(self):
        super().__init__()

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        K = pred.shape[-1]
        if target.is_floating_point():
            if target.shape != pred.shape:
                raise ValueError(f"distribution target {tuple(target.shape)} != pred {tuple(pred.shape)}")
            cdf_t = target.cumsum(-1)
        else:
            if target.shape != pred.shape[:-1]:
                raise ValueError(
                    f"index target {tuple(target.shape)} != leading dims {tuple(pred.shape[:-1])}")
            # CDF of a one-hot at bin t: 0 before t, 1 from t on
            cdf_t = (torch.arange(K, device=pred.device) >= target[..., None]).to(pred.dtype)
        rows = (torch.softmax(pred, -1).cumsum(-1) - cdf_t).square().sum(-1)
        return _row_mean(rows, weight)


def _row_mean(rows: Tensor, weight: Tensor | None) -> Tensor:
    """Mean of per-row losses [...]; with weight (a prefix of the leading dims) the weighted mean."""
    if weight is None:
        return rows.mean()
    lead = rows.shape
    if weight.shape != lead[: weight.dim()]:
        raise ValueError(f"weight {tuple(weight.shape)} is not a prefix of leading dims {tuple(lead)}")
    w = weight.reshape(*weight.shape, *([1] * (rows.dim() - weight.dim()))).expand(lead)
    return (rows * w).sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)


def _log_probs_and_target(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """log softmax over bins, and the target as distributions [..., N] (one-hot for indices)."""
    if target.is_floating_point():
        if target.shape != pred.shape:
            raise ValueError(f"distribution target {tuple(target.shape)} != pred {tuple(pred.shape)}")
    else:
        if target.shape != pred.shape[:-1]:
            raise ValueError(f"index target {tuple(target.shape)} != leading dims {tuple(pred.shape[:-1])}")
        target = torch.nn.functional.one_hot(target, pred.shape[-1]).to(pred.dtype)
    return torch.log_softmax(pred, -1), target


@register_loss("bin_ce", aliases=("ordinal_ce",))
class BinCrossEntropyLoss(Loss):
    """Cross entropy over bins (SimCC's classification view; blind to how far off a wrong bin is):

        L = mean over leading dims of -sum_k t_k log softmax(x)_k

    t one-hot (index target: -log p_t) or a distribution (soft labels).
    """

    activation = "softmax"
    target_kind = "ordinal"
    target_form = "index"

    def __init__(self):
        super().__init__()

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        log_p, t = _log_probs_and_target(pred, target)
        return _row_mean(-(t * log_p).sum(-1), weight)


@register_loss("bin_kl", aliases=("ordinal_kl",))
class BinKLDivergenceLoss(Loss):
    """KL divergence from Gaussian-smoothed labels to the prediction (MMPose SimCC's KLDiscretLoss):

        L = mean over leading dims of sum_k t_k (log t_k - log softmax(x)_k),   0 log 0 = 0

    Summed over bins (MMPose averages over bins and can sharpen both sides with beta = 10
    and label_softmax; neither here). Equals bin_ce minus the labels' entropy: the same
    gradient for the same labels, 0 at a perfect match.
    """

    activation = "softmax"
    target_kind = "ordinal"
    target_form = "distribution"

    def __init__(self):
        super().__init__()

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        log_p, t = _log_probs_and_target(pred, target)
        return _row_mean((torch.xlogy(t, t) - t * log_p).sum(-1), weight)


class XYLoss(nn.Module):
    """A bins loss applied to both axes of the ordinal_xy head, summed:

        L = loss(x logits [B, K, N_x], t_x, w) + loss(y logits [B, K, N_y], t_y, w)

    w [B, K] (visibility). Each term is a weighted mean over keypoints, so L is the per-keypoint
    loss of one 2-D point (as a heatmap loss charges both coordinates at once).
    """

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss
        self.activation = loss.activation
        self.target_kind = loss.target_kind
        self.target_form = loss.target_form

    def forward(self, pred, target, weight: Tensor | None = None) -> Tensor:
        return self.loss(pred[0], target[0], weight) + self.loss(pred[1], target[1], weight)


class WithAttributeLoss(nn.Module):
    """The keypoint loss plus a weighted squared EMD over a per-instance ordinal attribute:

        L = keypoint_loss(kp_pred, kp_target, w) + weight * (1/B) sum_b sum_c (CDF(softmax(a_b))_c
                                                                            - CDF(onehot(t_b))_c)^2

    pred = (keypoint logits, attribute logits a [B, C]); target = (keypoint targets, classes t [B]
    long, in 0..C-1); w: the keypoint weights, as the keypoint loss takes them. weight = 0 leaves
    the keypoint loss as it is. `activation` (and `mode`, `target_kind`, `target_form` when
    the keypoint loss has them) are the keypoint loss's: inference is unchanged.
    """

    def __init__(self, keypoint_loss: nn.Module, weight: float = 1.0):
        super().__init__()
        self.keypoint = keypoint_loss
        self.attribute = SquaredEMDLoss()
        self.weight = float(weight)
        self.activation = keypoint_loss.activation
        for name in ("mode", "target_kind", "target_form"):
            if hasattr(keypoint_loss, name):
                setattr(self, name, getattr(keypoint_loss, name))

    def forward(self, pred, target, weight: Tensor | None = None) -> Tensor:
        if not (isinstance(pred, (tuple, list)) and len(pred) == 2 and pred[1].dim() == 2):
            raise TypeError("WithAttributeLoss takes pred = (keypoint logits, attribute logits [B, C]): "
                            "call the model with with_attribute=True")
        return self.keypoint(pred[0], target[0], weight) + self.weight * self.attribute(pred[1], target[1])
