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
from kpdet.losses.ground_distance import (
    GROUND_DISTANCES,
    GroundDistanceLearner,
    load_ground_distance,
    matrix_emd_rows,
)


@register_loss("squared_emd", aliases=("emd2",))
class SquaredEMDLoss(Loss):
    """Squared EMD between class distributions (Hou, Yu & Samaras, "Squared Earth Mover's
    Distance-based Loss for Training Deep Neural Networks", arXiv 1611.05916). `ground_distance`:

    - "ordinal" (default): ordered classes, ground distance |i - j|, the exact CDF form

          L = mean over leading dims of sum_k (CDF(softmax(x))_k - CDF(t)_k)^2

      (sum over the K bins: no 1/K factor, no square root);
    - "matrix": a given C x C ground distance D (`matrix`: nested list or .npy/.json path),

          L = mean over leading dims of sum_i p_i^2 (D[i, t]^exponent + bias),   p = softmax(x)

      (Hou et al.'s form for a general D, as the MilesGrey/emd reproduction computes it);
    - "learned": D learned from the classifier's features during training (`learner`, a
      GroundDistanceLearner fed by the engine; only the attribute head has such features):
      cross entropy for `warmup_epochs` epochs, then CE + weight * the "matrix" term; D from the
      class centroids by `learned_distance` (rank | tree), centroids averaged across epochs with
      `centroid_momentum`.

    pred: logits [..., K]; target: integer classes [...] or distributions [..., K]; weight: None or
    a tensor broadcastable to the leading dims from the left (e.g. [B, C] for pred [B, C, H, K]),
    giving a weighted mean. `classes`: K, checked against the matrix (needed for "learned").
    """

    activation = "softmax"  # over the last (bins) axis
    target_kind = "ordinal"
    target_form = "index"  # Hou et al.: one-hot labels; Gaussian distributions work too

    def __init__(self, ground_distance: str = "ordinal", matrix=None, exponent: float = 1.0,
                 bias: float = 0.0, classes: int | None = None, warmup_epochs: int = 4, balance: float = 3.5,
                 learned_distance: str = "rank", centroid_momentum: float = 0.0):
        super().__init__()
        if ground_distance not in GROUND_DISTANCES:
            raise ValueError(f"ground_distance={ground_distance!r} is not one of "
                             f"{', '.join(GROUND_DISTANCES)}")
        if (matrix is not None) != (ground_distance == "matrix"):
            raise ValueError(f"ground_distance={ground_distance!r}: `matrix` must be given with "
                             f"ground_distance='matrix' and only then (got matrix={matrix!r})")
        self.ground_distance, self.exponent, self.bias = ground_distance, float(exponent), float(bias)
        if matrix is not None:
            self.register_buffer("matrix", load_ground_distance(matrix, classes).float(), persistent=False)
        self.learner = None
        if ground_distance == "learned":
            if classes is None:
                raise ValueError("ground_distance='learned' needs `classes` (the number of classes)")
            self.learner = GroundDistanceLearner(classes, warmup_epochs, balance, learned_distance,
                                                 centroid_momentum)

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        _check_target(pred, target)
        probs = torch.softmax(pred, -1)
        if self.ground_distance == "matrix":
            rows = matrix_emd_rows(probs, target, self.matrix, self.exponent, self.bias)
        elif self.ground_distance == "learned":
            return self._learned(pred, probs, target, weight)
        else:
            rows = (probs.cumsum(-1) - _target_cdf(pred, target)).square().sum(-1)
        return _row_mean(rows, weight)

    def _learned(self, pred: Tensor, probs: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        """CE during the warm-up (sizing the EMD term in its last epoch), then CE + weight * EMD."""
        log_p, t = _log_probs_and_target(pred, target)
        ce = _row_mean(-(t * log_p).sum(-1), weight)
        learner = self.learner
        if learner.matrix is None or not (learner.recording or learner.weight):
            return ce
        matrix = learner.matrix.to(pred.device, pred.dtype)
        emd = _row_mean(matrix_emd_rows(probs, target, matrix, self.exponent, self.bias), weight)
        if learner.recording:
            learner.record(ce.detach(), emd.detach())
            return ce
        return ce + learner.weight * emd


def _check_target(pred: Tensor, target: Tensor) -> None:
    if target.is_floating_point():
        if target.shape != pred.shape:
            raise ValueError(f"distribution target {tuple(target.shape)} != pred {tuple(pred.shape)}")
    elif target.shape != pred.shape[:-1]:
        raise ValueError(f"index target {tuple(target.shape)} != leading dims {tuple(pred.shape[:-1])}")


def _target_cdf(pred: Tensor, target: Tensor) -> Tensor:
    """CDF of the target over the last axis; of a one-hot at bin t: 0 before t, 1 from t on."""
    if target.is_floating_point():
        return target.cumsum(-1)
    return (torch.arange(pred.shape[-1], device=pred.device) >= target[..., None]).to(pred.dtype)


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
    """The keypoint loss plus a weighted loss over a per-instance attribute class:

        L = keypoint_loss(kp_pred, kp_target, w) + weight * attribute_loss(a, t)

    pred = (keypoint logits, attribute logits a [B, C]); target = (keypoint targets, classes t [B]
    long, in 0..C-1); w: the keypoint weights, as the keypoint loss takes them. `attribute_loss`:
    a loss over a class axis (default: squared_emd, ordinal: (1/B) sum_b sum_c (CDF(softmax(a_b))_c
    - CDF(onehot(t_b))_c)^2; also bin_ce, or squared_emd with a ground-distance matrix or a learned
    one). weight = 0 leaves the keypoint loss as it is. `learner`: the attribute loss's
    GroundDistanceLearner (ground_distance='learned'), else None: the engine feeds it the
    classifier's input features. `activation` (and `mode`, `target_kind`, `target_form` when the
    keypoint loss has them) are the keypoint loss's: inference is unchanged.
    """

    def __init__(self, keypoint_loss: nn.Module, weight: float = 1.0,
                 attribute_loss: nn.Module | None = None):
        super().__init__()
        self.keypoint = keypoint_loss
        self.attribute = attribute_loss if attribute_loss is not None else SquaredEMDLoss()
        self.learner = getattr(self.attribute, "learner", None)
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
