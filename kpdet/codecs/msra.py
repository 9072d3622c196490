"""MSRA heatmaps (Xiao et al. 2018), and DARK (Zhang et al. 2020) with unbiased=True."""
from __future__ import annotations

from typing import Any

from .base import HeatmapCodec
from .registry import register_codec


@register_codec("msra")
class MSRAHeatmap(HeatmapCodec):
    """u = x * heatmap_size / input_size (MMPose's MSRAHeatmap).

    unbiased=False: the Gaussian is centred on the nearest heatmap pixel (peak exactly 1.0),
    cut at radius_factor * sigma; decoding is argmax + 0.25 px towards the larger neighbour
    (error up to about 0.25 heatmap px = 1 input px at stride 4).
    unbiased=True (DARK): the Gaussian is centred at the sub-pixel position; decoding blurs
    the heatmap around the peak, takes its log and one Newton (second-order Taylor) step.
    Other params: see `HeatmapCodec`.
    """

    def __init__(self, unbiased: bool = False, **params: Any):
        self.unbiased = bool(unbiased)
        self.subpixel = self.unbiased
        self.default_refine = "dark" if self.unbiased else "quarter"
        super().__init__(**params)


@register_codec("dark")
class DARKHeatmap(MSRAHeatmap):
    """`msra` with unbiased=True by default (DARK)."""

    def __init__(self, unbiased: bool = True, **params: Any):
        super().__init__(unbiased=unbiased, **params)
