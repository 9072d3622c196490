"""Fused elementwise losses: value and hand-written gradient in one chunked forward pass.

For a multilabel pixelwise loss L = mean_{b,c,h,w} w[b,c] v(x, y), `fused_mean(x, y, w, fn)`
calls `fn(x_chunk, y_chunk) -> (v, dv/dx)` under no_grad on chunks that fit in cache and
saves only the gradient (peak extra memory ~2x pred, instead of one saved tensor per op).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

CHUNK = 1 << 18  # elements per chunk: temporaries stay in cache, few Python round trips

ValueGrad = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def sigmoid_parts(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(p, 1-p, log p, log(1-p)) of p = sigmoid(x), each exact for any finite x:
    log p = -(max(-x, 0) + log1p(exp(-|x|))), log(1-p) = -(max(x, 0) + log1p(exp(-|x|)))."""
    soft = torch.log1p(torch.exp(-x.abs()))
    log_p = torch.clamp(x, max=0).sub_(soft)
    log_q = torch.clamp(x, min=0).neg_().sub_(soft)
    return torch.sigmoid(x), torch.sigmoid(-x), log_p, log_q


class _FusedMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, w: Tensor, fn: ValueGrad) -> Tensor:
        hw = x[0, 0].numel()
        rows_x, rows_y, rows_w = x.reshape(-1, hw), y.reshape(-1, hw), w.reshape(-1, 1)
        grad = torch.empty_like(rows_x)
        total = x.new_zeros(())
        # chunks only help a CPU cache; on a GPU one pass over the whole tensor is best
        step = max(1, CHUNK // hw) if x.device.type == "cpu" else rows_x.shape[0]
        for i in range(0, rows_x.shape[0], step):
            sl = slice(i, i + step)
            v, g = fn(rows_x[sl], rows_y[sl])
            total += (v.sum(1, keepdim=True) * rows_w[sl]).sum()
            torch.mul(g, rows_w[sl], out=grad[sl])
        ctx.save_for_backward(grad)
        ctx.scale, ctx.shape = 1.0 / x.numel(), x.shape
        return total * ctx.scale

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        (grad,) = ctx.saved_tensors
        return (grad * (grad_out * ctx.scale)).view(ctx.shape), None, None, None


def fused_mean(x: Tensor, y: Tensor, weight: Tensor | None, fn: ValueGrad) -> Tensor:
    """mean over all elements of w[b,c] * v(x, y) for x, y [B, C, ...], weight None or [B, C].
    d/d y is not computed (targets are data)."""
    w = x.new_ones(x.shape[:2]) if weight is None else weight
    return _FusedMean.apply(x.contiguous(), y.contiguous(), w, fn)
