"""Ordinal losses over a bins axis: squared earth mover's distance."""
from __future__ import annotations

import torch
from torch import Tensor

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
        if weight is None:
            return rows.mean()
        lead = rows.shape
        if weight.shape != lead[: weight.dim()]:
            raise ValueError(f"weight {tuple(weight.shape)} is not a prefix of leading dims {tuple(lead)}")
        w = weight.reshape(*weight.shape, *([1] * (rows.dim() - weight.dim()))).expand(lead)
        return (rows * w).sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)
