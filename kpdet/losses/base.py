"""Loss registry, `build_loss` and the base module every loss derives from.

A loss is an `nn.Module` called as `loss(pred, target, weight=None) -> scalar`:
`pred` [B, C, H, W] logits (raw values for MSE), `target` the same shape in [0, 1]
(or class indices [B, H, W] in multiclass mode), `weight` None or [B, C].
Each loss names the `activation` that turns `pred` into scores at inference.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from kpdet.registry import Registry, UnknownParameterError

LOSSES = Registry("loss")
ACTIVATIONS = ("sigmoid", "softmax", "identity")


def register_loss(name: str, aliases: tuple[str, ...] = ()):
    """Class decorator: `@register_loss("distance_aware_focal", aliases=("daf",))`."""
    return LOSSES.register(name, aliases)


def list_losses() -> list[str]:
    """Canonical names of all registered losses (aliases excluded), sorted."""
    return LOSSES.names()


def _check_params(name: str, cls: type, params: Mapping[str, Any]) -> None:
    """Raise TypeError naming the loss and the parameter when `params` has an unknown key."""
    sig = inspect.signature(cls.__init__)
    known = [p for p in sig.parameters if p != "self"]
    unknown = [k for k in params if k not in known]
    if unknown:
        raise UnknownParameterError.of(f"loss {name!r}", unknown[0], known)


def build_loss(spec: str | Mapping[str, Any]) -> nn.Module:
    """Build a loss from `"name"` or `{"type": name, **params}`; aliases are accepted.

    An unknown name raises KeyError listing the known names; an unknown parameter
    raises TypeError naming the parameter and the loss.
    """
    params = {"type": spec} if isinstance(spec, str) else dict(spec)
    if "type" not in params:
        raise KeyError(f"loss spec needs a 'type' key, got {params}")
    name = LOSSES.canonical(params.pop("type"))
    cls = LOSSES.get(name)
    _check_params(name, cls, params)
    return cls(**params)


def _upcast(x: Tensor) -> Tensor:
    """float16/bfloat16 -> float32; float32/float64 unchanged (losses never compute in half)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class Loss(nn.Module):
    """Base class: casts to >= float32 with autocast off, then calls `compute`.

    Subclasses set `activation` and implement `compute(pred, target, weight)`.
    `target_kind`: "heatmap" (pred and target [B, K, H, W]: usable by the heatmap
    trainer) or "ordinal" (logits over a trailing bins axis). `prior`: for sigmoid
    losses, the score the network starts at (the final bias is logit(prior) unless
    `model.final_bias` is set; RetinaNet's pi, CenterNet's 0.1).
    """

    activation: str = "sigmoid"
    target_kind: str = "heatmap"
    prior: float = 0.1

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        # Under CUDA autocast the head output is bf16/fp16; logs and sums of
        # millions of terms must run in float32, so autocast is switched off here.
        dev = pred.device.type
        enabled = torch.amp.is_autocast_available(dev)
        with torch.autocast(dev if enabled else "cpu", enabled=False):
            pred = _upcast(pred)
            if target.is_floating_point():
                target = target.to(pred.dtype)
            if weight is not None:
                weight = weight.to(pred.dtype)
            return self.compute(pred, target, weight)

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        raise NotImplementedError


def check_dense(pred: Tensor, target: Tensor, weight: Tensor | None) -> None:
    """Shapes of a dense loss: pred and target [B, C, ...] alike, weight None or [B, C]."""
    if target.shape != pred.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != pred shape {tuple(pred.shape)}")
    if weight is not None and weight.shape != pred.shape[:2]:
        raise ValueError(f"weight shape {tuple(weight.shape)} != [B, C] = {tuple(pred.shape[:2])}")


def channel_weight(weight: Tensor, ndim: int) -> Tensor:
    """[B, C] -> [B, C, 1, ..., 1] broadcastable over a tensor with `ndim` dims."""
    return weight.reshape(*weight.shape, *([1] * (ndim - 2)))
