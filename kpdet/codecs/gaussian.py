"""Batched Gaussian rendering: separable 1-D factors, truncation, one positive per keypoint.

All sizes here are in heatmap pixels; pixel j has its centre at coordinate j.
"""
from __future__ import annotations

import torch

# Largest exponent kept per 1-D factor: exp(-40) = 4.2e-18, so a 2-D value
# (product of two factors) is at least 1.8e-35, above float32's smallest normal
# (1.2e-38). Anything farther is exactly 0: no denormals, which are slow on CPU.
MAX_EXPONENT = 40.0
# The largest float32 below 1.0: caps every non-peak value of a one-positive target.
ONE_BELOW = float(torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)))


def gaussian_1d(centre: torch.Tensor, sigma: torch.Tensor, size: int, radius_factor: float,
                one_positive: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One axis of a separable Gaussian: exp(-(j - c)^2 / (2 sigma^2)) for |j - c| <= radius_factor * sigma.

    centre, sigma: [...] heatmap px. Returns (g [..., size] float32, in_map [...] bool:
    some pixel of the truncated support lies inside [0, size - 1]).
    one_positive: divide by the value at the in-map pixel nearest the centre, so that
    pixel is exactly 1.0 (the log stays a quadratic with the same centre, so decoding is
    unaffected) and cap every other value just below 1.0 (a centre at .5 would tie).
    """
    grid = torch.arange(size, device=centre.device, dtype=torch.float32)
    # |d| <= radius_factor * sigma  <=>  d^2 / (2 sigma^2) <= radius_factor^2 / 2: one compare.
    # Few, in-place ops: each op above torch's grain size is a parallel region, and those
    # dominate when the cores are shared.
    cut = min(radius_factor**2 / 2, MAX_EXPONENT)
    exponent = (grid - centre[..., None]).square_().mul_(0.5 / sigma[..., None] ** 2)
    keep = exponent <= cut
    g = torch.exp(exponent.neg_()).mul_(keep)
    in_map = keep.any(-1)
    if one_positive:
        g = _one_positive(g, centre, size, grid)
    return g, in_map


def _one_positive(g: torch.Tensor, centre: torch.Tensor, size: int, grid: torch.Tensor) -> torch.Tensor:
    nearest = torch.floor(centre + 0.5).clamp(0, size - 1).long()
    peak = g.gather(-1, nearest[..., None])
    # peak == 0 only when the support misses the map; that channel is zeroed anyway.
    g = g / torch.where(peak > 0, peak, torch.ones_like(peak))
    return torch.where(grid == nearest[..., None], (peak > 0).float(), g.clamp(max=ONE_BELOW))


def render_gaussians(centres: torch.Tensor, sigma: torch.Tensor, visible: torch.Tensor,
                     heatmap_size: tuple[int, int], radius_factor: float,
                     one_positive: bool | str = False, out: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussians at sub-pixel centres, truncated to a square of half-side radius_factor * sigma.

    centres [B, K, 2] heatmap px (x, y); sigma broadcastable to [B, K]; visible [B, K] bool.
    -> (heatmaps [B, K, H, W] float32, weights [B, K] float32). A channel is all zero, with
    weight 0, when the keypoint is invisible or its truncated support misses the map.
    heatmap[b, k, y, x] = gy[b, k, y] * gx[b, k, x]: one outer product, no loop.
    out: optional float32 [B, K, H, W] buffer to write into (reusing it avoids page faults).
    one_positive: False; True or "set" (CONTRACT.md: the in-map pixel nearest the centre is
    set to 1.0, the rest of the Gaussian is unchanged); "scale" (the Gaussian is divided by
    its value at that pixel, see `gaussian_1d`).
    """
    W, H = heatmap_size
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=centres.device).expand(centres.shape[:2])
    # Park invisible (possibly NaN) keypoints far away so they render nothing.
    centres = torch.where(visible[..., None], centres.nan_to_num(-1e6), torch.full_like(centres, -1e6))
    scale = one_positive == "scale"
    gx, in_x = gaussian_1d(centres[..., 0], sigma, W, radius_factor, scale)
    gy, in_y = gaussian_1d(centres[..., 1], sigma, H, radius_factor, scale)
    weights = (visible & in_x & in_y).float()
    heatmaps = torch.mul(gy[..., :, None], gx.mul_(weights[..., None])[..., None, :], out=out)
    if one_positive and not scale:
        set_nearest_to_one(heatmaps, centres, weights)
    return heatmaps, weights


def set_nearest_to_one(heatmaps: torch.Tensor, centres: torch.Tensor, weights: torch.Tensor) -> None:
    """In place: heatmaps[b, k] at the in-map pixel nearest centres[b, k] (heatmap px) becomes
    weights[b, k] (1.0 for a rendered keypoint, 0 for a zeroed channel)."""
    H, W = heatmaps.shape[-2:]
    nearest = torch.floor(centres + 0.5)
    x = nearest[..., 0].clamp(0, W - 1).long()
    y = nearest[..., 1].clamp(0, H - 1).long()
    flat = heatmaps.view(*heatmaps.shape[:2], H * W)
    flat.scatter_(2, (y * W + x)[..., None], weights[..., None])


def cornernet_radius(width: torch.Tensor, height: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """Largest corner displacement r keeping IoU >= min_overlap with a (width x height) box.

    CornerNet's three cases, each a quadratic in r, solved correctly (the upstream
    `gaussian_radius` divides by 2 instead of 2a and takes the wrong root in cases 1-2;
    see CenterNet issue #110):
      both corners shift the same way: IoU = (w-r)(h-r) / (2wh - (w-r)(h-r))
        -> r^2 - (w+h) r + wh (1-t)/(1+t) >= 0, smaller root;
      box shrinks by r on each side: IoU = (w-2r)(h-2r) / wh
        -> 4 r^2 - 2(w+h) r + (1-t) wh >= 0, smaller root;
      box grows by r on each side: IoU = wh / ((w+2r)(h+2r))
        -> 4t r^2 + 2t(w+h) r - (1-t) wh <= 0, positive root.
    width, height: tensors (any matching shape), same unit as r.
    """
    t = min_overlap
    s, p = width + height, width * height
    r1 = (s - torch.sqrt(s * s - 4 * p * (1 - t) / (1 + t))) / 2
    r2 = (2 * s - torch.sqrt(4 * s * s - 16 * (1 - t) * p)) / 8
    r3 = (-2 * t * s + torch.sqrt(4 * t * t * s * s + 16 * t * (1 - t) * p)) / (8 * t)
    return torch.minimum(torch.minimum(r1, r2), r3).clamp(min=0)


def sigma_from_radius(radius: torch.Tensor) -> torch.Tensor:
    """CornerNet/CenterNet: diameter = 2r + 1 pixels covers +-3 sigma, so sigma = (2r + 1) / 6."""
    return (2 * radius + 1) / 6


def blur_kernel(size: int, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel [size] with OpenCV's default sigma for that size.

    sigma = 0.3 ((size - 1) / 2 - 1) + 0.8 (cv2.getGaussianKernel), e.g. size 11 -> 2.0,
    the kernel MMPose uses for DARK's modulation.
    """
    s = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-x * x / (2 * s * s))
    return k / k.sum()
