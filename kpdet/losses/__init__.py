"""Losses: `build_loss(spec)` -> nn.Module called as `loss(pred, target, weight=None)`.

Importing a loss module registers its losses; a new loss is one file (or one class in
the file of its kind) plus its import line here.
"""
from kpdet.losses import heatmap, ordinal, pose, segmentation  # noqa: F401  (importing registers the losses)
from kpdet.losses.base import LOSSES, Loss, build_loss, list_losses, register_loss

__all__ = ["LOSSES", "Loss", "build_loss", "list_losses", "register_loss"]
