"""The heatmap codec: keypoints in input-image px <-> Gaussian heatmaps, batched, on any device.

Coordinate convention (written once, here). In the input image and in the heatmap,
pixel i has its centre at coordinate i (COCO). A codec maps input px x to heatmap
px u by one affine map per axis, u = a * x + b:
  msra (and msra with unbiased=True / DARK): a = heatmap_size / input_size, b = 0
    (MSRA/MMPose: x = 4u for stride 4);
  udp: a = (heatmap_size - 1) / (input_size - 1), b = 0 (Huang et al. 2020: the first and
    last pixel centres of the input and the heatmap coincide).
Decoding applies the inverse, x = (u - b) / a, to the sub-pixel heatmap location.
Mirroring the input crop (x -> W_in - 1 - x) equals mirroring the heatmap
(u -> W - 1 - u) followed by a shift of W - 1 - a (W_in - 1) - 2b heatmap px
(-0.75 for msra at stride 4, 0 for udp); `flip_heatmaps` undoes it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..keypoints import COCO_SIGMAS
from .flip import flip_heatmaps
from .gaussian import cornernet_radius, render_gaussians, sigma_from_radius
from .refine import (
    dark_offsets,
    heatmap_argmax,
    local_soft_argmax_offsets,
    quarter_offsets,
    soft_argmax,
)

REFINERS = ("none", "quarter", "dark", "soft_argmax")


def _size(value: Sequence[float], name: str) -> tuple[int, int]:
    """(W, H) as ints; accepts floats that are whole numbers (e.g. W / 4 from a config)."""
    w, h = (float(v) for v in value)
    if w != int(w) or h != int(h) or w < 2 or h < 2:
        raise ValueError(f"{name} must be two whole numbers >= 2, got {list(value)}")
    return int(w), int(h)


class HeatmapCodec:
    """Shared encode/decode/flip logic; subclasses set the affine map and defaults.

    input_size, heatmap_size: (W, H) in px. sigma: heatmap px, a float, a list of K floats
    (per keypoint), or "coco_oks" (COCO OKS sigmas times oks_scale; 30 gives a mean of 2.0).
    radius_factor: the Gaussian is cut to a square of half-side radius_factor * sigma.
    one_positive: exactly one pixel equal to 1.0 per visible keypoint (targets for
    distance_aware_focal). True or "set": the in-map pixel nearest the centre is set to 1.0
    (CONTRACT.md). "scale": the whole Gaussian is divided by its value there and every other
    pixel capped below 1.0, so its log keeps the same centre (no precision cost for DARK/UDP).
    refine: "none" | "quarter" | "dark" | "soft_argmax" (default per codec).
    blur_kernel_size: DARK's modulation kernel (OpenCV sigma for that size; 11 -> 2.0).
    min_overlap: IoU for CornerNet's radius when `encode` gets object sizes.
    """

    subpixel = True
    default_refine = "dark"

    def __init__(self, input_size: Sequence[float] = (192, 256), heatmap_size: Sequence[float] = (48, 64),
                 sigma: Any = 2.0, radius_factor: float = 3.0, one_positive: bool | str = False,
                 refine: str | None = None, blur_kernel_size: int = 11, min_overlap: float = 0.7,
                 oks_scale: float = 30.0):
        self.input_size = _size(input_size, "input_size")
        self.heatmap_size = _size(heatmap_size, "heatmap_size")
        self.sigma = self._parse_sigma(sigma, oks_scale)
        self.radius_factor = float(radius_factor)
        if one_positive not in (False, True, "set", "scale"):
            raise ValueError(f"one_positive must be false, true, 'set' or 'scale', got {one_positive!r}")
        self.one_positive = one_positive
        self.refine = refine or self.default_refine
        if self.refine not in REFINERS:
            raise ValueError(f"refine={self.refine!r} is not one of {', '.join(REFINERS)}")
        self.blur_kernel_size = int(blur_kernel_size)
        if self.blur_kernel_size > 1 and self.blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be odd, got {blur_kernel_size}")
        self.min_overlap = float(min_overlap)
        self.scale, self.offset = self.affine()

    @staticmethod
    def _parse_sigma(sigma: Any, oks_scale: float) -> torch.Tensor:
        if isinstance(sigma, str):
            if sigma != "coco_oks":
                raise ValueError(f"sigma must be a number, a list, or 'coco_oks'; got {sigma!r}")
            sigma = [oks_scale * s for s in COCO_SIGMAS]
        values = torch.tensor(sigma if isinstance(sigma, (int, float)) else list(sigma), dtype=torch.float32)
        if not bool((values > 0).all()):
            raise ValueError(f"sigma must be positive, got {sigma}")
        return values

    def affine(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Per axis (a_x, a_y), (b_x, b_y) of u = a x + b (input px -> heatmap px)."""
        (wi, hi), (wh, hh) = self.input_size, self.heatmap_size
        return (wh / wi, hh / hi), (0.0, 0.0)

    # coordinates -----------------------------------------------------------------------
    def to_heatmap(self, points: torch.Tensor) -> torch.Tensor:
        """[..., 2] input px -> heatmap px."""
        return points * points.new_tensor(self.scale) + points.new_tensor(self.offset)

    def to_input(self, points: torch.Tensor) -> torch.Tensor:
        """[..., 2] heatmap px -> input px."""
        return (points - points.new_tensor(self.offset)) / points.new_tensor(self.scale)

    @property
    def flip_shift(self) -> float:
        """Heatmap px to shift a mirrored heatmap by along x so it matches the original crop."""
        return -(self.heatmap_size[0] - 1 - self.scale[0] * (self.input_size[0] - 1) - 2 * self.offset[0])

    # encode ----------------------------------------------------------------------------
    def encode(self, keypoints: torch.Tensor, visible: torch.Tensor, sizes: torch.Tensor | None = None,
               out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """keypoints [B, K, 2] input px, visible [B, K] (bool, or > 0 = visible) ->
        (heatmaps [B, K, H, W] float32, weights [B, K] float32), on the inputs' device.

        sizes: optional [B, K, 2] object (w, h) in input px; each Gaussian then gets
        CornerNet's radius r for that box on the heatmap and sigma = (2r + 1) / 6.
        out: optional [B, K, H, W] float32 buffer for the heatmaps (reuse across steps).
        """
        centres = self.to_heatmap(keypoints.float())
        if not self.subpixel:
            centres = torch.floor(centres + 0.5)
        return render_gaussians(centres, self._sigmas(keypoints, sizes), visible > 0,
                                self.heatmap_size, self.radius_factor, self.one_positive, out)

    def _sigmas(self, keypoints: torch.Tensor, sizes: torch.Tensor | None) -> torch.Tensor:
        if sizes is not None:
            wh = sizes.float() * sizes.new_tensor(self.scale, dtype=torch.float32)
            return sigma_from_radius(cornernet_radius(wh[..., 0], wh[..., 1], self.min_overlap))
        K = keypoints.shape[1]
        if self.sigma.numel() not in (1, K):
            raise ValueError(f"codec has {self.sigma.numel()} sigmas for {K} keypoints")
        return self.sigma.to(keypoints.device).reshape(-1)[None, :].expand(keypoints.shape[0], K)

    # decode ----------------------------------------------------------------------------
    def decode(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """scores [B, K, H, W] (activated) -> (keypoints [B, K, 2] input px, confidences [B, K]).

        The confidence is the heatmap maximum; the location is the argmax plus the refiner's
        sub-pixel offset (or, for soft_argmax, the expected position over the whole map).
        """
        scores = scores.float()
        x, y, conf = heatmap_argmax(scores)
        if self.refine == "soft_argmax":
            return self.to_input(soft_argmax(scores)), conf
        locs = torch.stack([x, y], dim=-1).float()
        locs = locs + self.offsets(scores, x[..., None], y[..., None])[..., 0, :]
        return self.to_input(locs), conf

    def offsets(self, scores: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sub-pixel offsets [B, K, M, 2] heatmap px of peaks x, y [B, K, M]."""
        if self.refine == "quarter":
            return quarter_offsets(scores, x, y)
        if self.refine == "dark":
            return dark_offsets(scores, x, y, self.blur_kernel_size)
        if self.refine == "soft_argmax":
            return local_soft_argmax_offsets(scores, x, y)
        return torch.zeros(*x.shape, 2, device=scores.device)

    def decode_peaks(self, scores: torch.Tensor, max_peaks: int = 100,
                     threshold: float = 0.1) -> list[dict[str, torch.Tensor]]:
        """Every instance of every class (point detection); see `kpdet.codecs.peaks.find_peaks`."""
        from .peaks import find_peaks

        return find_peaks(scores, self, max_peaks=max_peaks, threshold=threshold)

    # flip ------------------------------------------------------------------------------
    def flip_heatmaps(self, heatmaps: torch.Tensor, flip_index: Sequence[int]) -> torch.Tensor:
        """Heatmaps [B, K, H, W] of the mirrored crop -> those of the original crop (flip testing)."""
        return flip_heatmaps(heatmaps, flip_index, self.flip_shift)

    def __repr__(self) -> str:
        sigma = self.sigma.tolist()
        return (f"{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={sigma}, refine={self.refine!r}, one_positive={self.one_positive})")
