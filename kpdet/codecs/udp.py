"""UDP heatmaps: unbiased data processing (Huang et al. 2020)."""
from __future__ import annotations

from .base import HeatmapCodec
from .registry import register_codec


@register_codec("udp")
class UDPHeatmap(HeatmapCodec):
    """u = x * (heatmap_size - 1) / (input_size - 1): the first and last pixel centres of the
    input and the heatmap coincide, so a mirrored input gives an exactly mirrored heatmap
    (flip_shift = 0). Sub-pixel Gaussian centres, DARK decoding (see `HeatmapCodec`).
    """

    subpixel = True
    default_refine = "dark"

    def affine(self):
        (wi, hi), (wh, hh) = self.input_size, self.heatmap_size
        return ((wh - 1) / (wi - 1), (hh - 1) / (hi - 1)), (0.0, 0.0)
