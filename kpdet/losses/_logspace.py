"""Log-space helpers shared by the segmentation losses (no eps, finite for |logit| <= 100)."""
from __future__ import annotations

import torch
from torch import Tensor


def log1m_softmax(x: Tensor, dim: int = 1) -> Tensor:
    """log(1 - softmax(x)_i) along `dim`, exactly: log sum_{j != i} exp(x_j) - logsumexp(x).

    For the arg-max class i*, the sum over the other classes is a logsumexp with x_i*
    masked to -inf (one extra pass instead of C). Every other class has z_i <= 1/2, so
    log1p(-z_i) is accurate there. z_i* is zeroed before log1p so that the unused
    branch of `where` has a finite gradient (no 0 * inf = nan). Needs C >= 2.
    """
    lse = torch.logsumexp(x, dim, keepdim=True)
    top = torch.zeros_like(x, dtype=torch.bool).scatter_(dim, x.argmax(dim, keepdim=True), True)
    lse_others = torch.logsumexp(x.masked_fill(top, float("-inf")), dim, keepdim=True)
    z_rest = torch.exp(x - lse).masked_fill(top, 0.0)
    return torch.where(top, lse_others - lse, torch.log1p(-z_rest))
