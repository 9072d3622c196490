"""Ordinal x/y-bin codec (SimCC, Li et al. 2022): keypoints <-> per-axis bins, batched, on any device.

Coordinate convention (written once, here). Pixel centres are at integers (COCO), so the
input image spans [-0.5, W_in - 0.5] along x. With `split` s bins per input px there are
N_x = W_in * s x-bins that tile it exactly: bin j covers input px [j/s - 0.5, (j+1)/s - 0.5)
and has its centre at c_j = (j + 0.5)/s - 0.5 (for s = 1, bin j is pixel j). A coordinate x
is at bin coordinate u = (x + 0.5) s - 0.5 (bin centres at integers u = j); decoding applies
x = (u + 0.5)/s - 0.5. Likewise along y with H_in. Mirroring the crop (x -> W_in - 1 - x)
maps c_j to c_{N_x - 1 - j}: flipping the x distribution is an exact reversal, no shift.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .registry import register_codec

TARGETS = ("gaussian", "index")
DECODERS = ("local_expectation", "expectation", "argmax")


@register_codec("ordinal_xy")
class OrdinalXYCodec:
    """Targets and decoding for the ordinal_xy head.

    input_size: (W_in, H_in) px. split: bins per input px (2: half-pixel bins).
    sigma: Gaussian label width in bins (target="gaussian"); 0 gives one-hot distributions.
    target: "gaussian" (distributions [B, K, N]) or "index" (bin indices [B, K], long);
      None = "gaussian" here; the engine sets it from the loss's `target_form`.
    decode: "local_expectation" (expected bin within +-window of the argmax, renormalised; default),
      "expectation" (over the whole axis: sub-bin, but pulled to the centre by tail mass),
      "argmax" (bin centre).
    window: bins either side of the argmax for local_expectation and for the confidence;
      None = max(split, ceil(4 sigma)). local_expectation narrows the window at the border so that
      it stays symmetric about the peak (a cut label would pull a wider one inwards).
    """

    target_kind = "ordinal"

    def __init__(self, input_size: Sequence[float] = (192, 256), split: float = 2, sigma: float = 2.0,
                 target: str | None = None, decode: str = "local_expectation", window: int | None = None):
        self.input_size = tuple(int(v) for v in input_size)
        self.split = float(split)
        bins = [v * self.split for v in self.input_size]
        if self.split <= 0 or any(b != int(b) for b in bins):
            raise ValueError(f"codec.split={split!r}: input_size {list(self.input_size)} x split must be "
                             f"whole numbers")
        self.num_bins = tuple(int(b) for b in bins)  # (N_x, N_y)
        if sigma < 0:
            raise ValueError(f"codec.sigma must be >= 0 (bins), got {sigma}")
        self.sigma = float(sigma)
        self.target = target or "gaussian"
        if self.target not in TARGETS:
            raise ValueError(f"codec.target={target!r} is not one of {', '.join(TARGETS)}")
        if decode not in DECODERS:
            raise ValueError(f"codec.decode={decode!r} is not one of {', '.join(DECODERS)}")
        self.decoder = decode
        default_window = max(math.ceil(self.split), math.ceil(4 * self.sigma))
        self.window = int(window) if window is not None else default_window

    # coordinates -----------------------------------------------------------------------
    def to_bins(self, points: torch.Tensor) -> torch.Tensor:
        """[..., 2] input px -> bin coordinates u (bin centres at integers)."""
        return (points + 0.5) * self.split - 0.5

    def to_input(self, u: torch.Tensor) -> torch.Tensor:
        """[..., 2] bin coordinates -> input px."""
        return (u + 0.5) / self.split - 0.5

    # encode ----------------------------------------------------------------------------
    def encode(self, keypoints: torch.Tensor, visible: torch.Tensor):
        """keypoints [B, K, 2] input px, visible [B, K] (bool, or > 0 = visible) ->
        ((t_x, t_y), weights [B, K] float32) on the inputs' device.

        target="gaussian": t_x [B, K, N_x], t_y [B, K, N_y] float32 distributions (sum 1), a
        Gaussian of `sigma` bins centred at the sub-bin u (one-hot at the nearest bin for
        sigma = 0); target="index": t_x, t_y [B, K] long, the nearest bin. A keypoint that is
        not visible or lies outside the crop gets weight 0 (and an all-zero distribution).
        """
        u = self.to_bins(keypoints.float())
        limits = u.new_tensor(self.num_bins)
        inside = ((u >= -0.5) & (u <= limits - 0.5)).all(-1) & torch.isfinite(u).all(-1)
        valid = (visible > 0) & inside
        u = torch.where(valid[..., None], u, torch.zeros_like(u))
        if self.target == "index":
            index = torch.minimum(torch.floor(u + 0.5).clamp_min(0), limits - 1).long()
            return (index[..., 0], index[..., 1]), valid.float()
        labels = tuple(self._distribution(u[..., a], n, valid) for a, n in enumerate(self.num_bins))
        return labels, valid.float()

    def _distribution(self, u: torch.Tensor, n: int, valid: torch.Tensor) -> torch.Tensor:
        """[B, K] bin coordinates -> [B, K, n] normalised labels; zero rows where not valid."""
        bins = torch.arange(n, device=u.device, dtype=torch.float32)
        if self.sigma == 0:
            labels = (bins == torch.floor(u + 0.5).clamp(0, n - 1)[..., None]).float()
        else:
            # exponent capped at 40 (as the heatmap codecs): no denormals far from the centre
            labels = torch.exp(-((bins - u[..., None]) ** 2 / (2 * self.sigma**2)).clamp(max=40.0))
            labels = labels / labels.sum(-1, keepdim=True)
        return labels * valid[..., None]

    # decode ----------------------------------------------------------------------------
    def decode(self, outputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(p_x [B, K, N_x], p_y [B, K, N_y]) softmax probabilities -> (keypoints [B, K, 2] input px,
        confidences [B, K]). Confidence: the smaller over x and y of the probability mass within
        +-window bins of the argmax (window 0: SimCC's peak value)."""
        coords, confs = zip(*(self._decode_axis(p.float()) for p in outputs))
        return self.to_input(torch.stack(coords, -1)), torch.minimum(*confs)

    def _decode_axis(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, K, N] -> (bin coordinate [B, K], mass within +-window of the peak [B, K])."""
        bins = torch.arange(p.shape[-1], device=p.device, dtype=p.dtype)
        peak = p.argmax(-1, keepdim=True)
        distance = (bins - peak).abs()
        mass = (p * (distance <= self.window)).sum(-1)
        if self.decoder == "argmax":
            return peak[..., 0].to(p.dtype), mass
        if self.decoder == "expectation":
            weights = p
        else:  # a window symmetric about the peak, narrowed at the border so it stays symmetric
            reach = torch.minimum(peak, p.shape[-1] - 1 - peak).clamp(max=self.window)
            weights = p * (distance <= reach)
        u = (weights * bins).sum(-1) / weights.sum(-1).clamp_min(torch.finfo(p.dtype).tiny)
        return u, mass

    # flip ------------------------------------------------------------------------------
    def flip_outputs(self, outputs, flip_index: Sequence[int]):
        """(p_x, p_y) of the mirrored crop -> those of the original crop: reverse x (exact, see the
        module docstring) and take keypoint flip_index[k] for keypoint k."""
        index = torch.as_tensor(list(flip_index), device=outputs[0].device, dtype=torch.long)
        return outputs[0].flip(-1).index_select(1, index), outputs[1].index_select(1, index)

    # pictures --------------------------------------------------------------------------
    def near_mass(self, p: torch.Tensor) -> torch.Tensor:
        """[..., N] probabilities -> [..., N]: the mass within +-window bins of each bin, in [0, 1]
        (at the peak: the axis's confidence). Absolute: a flat output stays near (2 window + 1) / N."""
        width = 2 * self.window + 1
        flat = p.float().reshape(-1, 1, p.shape[-1])  # zero padding: no mass beyond the axis
        mass = torch.nn.functional.avg_pool1d(flat, width, 1, self.window, count_include_pad=True) * width
        return mass.reshape(p.shape).clamp(0, 1)

    def joint_map(self, outputs) -> torch.Tensor:
        """(p_x, p_y) -> [B, K, N_y, N_x] = near_mass(p_y) (x) near_mass(p_x), in [0, 1]: a heatmap-like
        picture on the confidence's scale (the TensorBoard panel)."""
        return self.near_mass(outputs[1])[..., :, None] * self.near_mass(outputs[0])[..., None, :]

    def __repr__(self) -> str:
        return (f"OrdinalXYCodec(input_size={self.input_size}, split={self.split}, sigma={self.sigma}, "
                f"target={self.target!r}, decode={self.decoder!r}, window={self.window})")
