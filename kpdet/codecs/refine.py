"""Heatmap peak location: argmax, then a sub-pixel offset (quarter shift, DARK, or soft-argmax).

Every refiner works on peaks (x, y) [B, K, M] (M peaks per channel; M = 1 for
`decode`) of scores [B, K, H, W] and returns offsets [B, K, M, 2] in heatmap px,
reading only a small window around each peak (gathered, no loop).
"""
from __future__ import annotations

import torch

from .gaussian import blur_kernel

LOG_EPS = 1e-10  # DARK's floor before the log (MMPose's value)


def heatmap_argmax(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """scores [B, K, H, W] -> (x [B, K] long, y [B, K] long, max value [B, K])."""
    W = scores.shape[-1]
    values, index = scores.flatten(2).max(-1)
    return index % W, index // W, values


def gather_window(scores: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                  radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Square windows around peaks: x, y [B, K, M] long -> (values, inside) [B, K, M, P, P], P = 2r + 1.

    values[..., i, j] = scores[b, k, y + i - r, x + j - r], 0 where that pixel is off the map.
    Indices are built per axis ([..., P]) and combined once; one index_select reads the windows.
    """
    B, K, H, W = scores.shape
    r = torch.arange(-radius, radius + 1, device=scores.device)
    xs = x[..., None] + r  # [B, K, M, P]
    ys = y[..., None] + r
    inside = ((ys >= 0) & (ys < H))[..., :, None] & ((xs >= 0) & (xs < W))[..., None, :]
    channel = torch.arange(B * K, device=scores.device).view(B, K, 1, 1) * (H * W)
    index = (channel + ys.clamp(0, H - 1) * W)[..., :, None] + xs.clamp(0, W - 1)[..., None, :]
    values = scores.reshape(-1).index_select(0, index.reshape(-1)).view(index.shape)
    return values * inside, inside


def quarter_offsets(scores: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MSRA's decoding: move 0.25 px towards the larger neighbour, per axis (0 at the map edge)."""
    win, inside = gather_window(scores, x, y, 1)
    dx = (win[..., 1, 2] - win[..., 1, 0]) * (inside[..., 1, 2] & inside[..., 1, 0])
    dy = (win[..., 2, 1] - win[..., 0, 1]) * (inside[..., 2, 1] & inside[..., 0, 1])
    return 0.25 * torch.stack([dx.sign(), dy.sign()], dim=-1)


def newton_offsets(logs: torch.Tensor) -> torch.Tensor:
    """One Newton step on a 3x3 window of log values [..., 3, 3] centred on the peak -> [..., 2].

    Central differences (exact for a quadratic, i.e. for the log of a Gaussian):
      g = (dx, dy), dx = (L[1,2] - L[1,0]) / 2; Hessian dxx = L[1,2] - 2 L[1,1] + L[1,0],
      dxy = (L[2,2] - L[2,0] - L[0,2] + L[0,0]) / 4; offset = -H^-1 g, closed form.
    Where H is not negative definite (no maximum) the offset is 0; it is clamped to +-1 px.
    """
    _, dx, dy, dxx, dyy, dxy = quadratic_fit(logs)
    det = dxx * dyy - dxy * dxy
    ok = (dxx < 0) & (det > 0)
    det = torch.where(ok, det, torch.ones_like(det))
    ox = -(dyy * dx - dxy * dy) / det
    oy = -(dxx * dy - dxy * dx) / det
    return (torch.stack([ox, oy], dim=-1) * ok[..., None]).clamp(-1, 1)


def quadratic_fit(logs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Central-difference quadratic of 3x3 log windows [..., 3, 3]: (L0, gx, gy, hxx, hyy, hxy) [...].

    log value at offset (u, v) from the centre ~ L0 + gx u + gy v + (hxx u^2 + hyy v^2) / 2 + hxy u v;
    exact when the window is the log of a Gaussian.
    """
    L0 = logs[..., 1, 1]
    gx = 0.5 * (logs[..., 1, 2] - logs[..., 1, 0])
    gy = 0.5 * (logs[..., 2, 1] - logs[..., 0, 1])
    hxx = logs[..., 1, 2] - 2 * L0 + logs[..., 1, 0]
    hyy = logs[..., 2, 1] - 2 * L0 + logs[..., 0, 1]
    hxy = 0.25 * (logs[..., 2, 2] - logs[..., 2, 0] - logs[..., 0, 2] + logs[..., 0, 0])
    return L0, gx, gy, hxx, hyy, hxy


def gaussian_fill(scores: torch.Tensor, x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """Replace pixels <= 0 of windows [B, K, M, P, P] around (x, y) (off-map pixels are 0 there)
    by the axis-aligned Gaussian fitted to the raw 3x3 pixels at the peak.

    At the map edge the 3x3 fit window moves one pixel inwards (a quadratic is exact from any
    three points). For a clean (axis-aligned) Gaussian target the fill is exact, so blurring the
    filled window is like blurring a map without border or truncation. The model is separable,
    exp(qx(u)) * exp(qy(v)), so it costs one outer product. Without a fitted maximum (or when
    the fit window has a pixel <= 0, e.g. sigma < ~0.85 px at the edge) pixels stay 0: zero
    padding, as MMPose.
    """
    H, W = scores.shape[-2:]
    sx, sy = x.clamp(1, W - 2) - x, y.clamp(1, H - 2) - y
    fit, _ = gather_window(scores, x + sx, y + sy, 1)
    L0, gx, gy, hxx, hyy, _ = quadratic_fit(fit.clamp_min(LOG_EPS).log())
    r = win.shape[-1] // 2
    d = torch.arange(-r, r + 1, device=win.device, dtype=win.dtype)
    u, v = d - sx[..., None], d - sy[..., None]  # [B, K, M, P] offsets from the fit centre
    ok = (hxx < 0) & (hyy < 0) & (fit > 0).flatten(-2).all(-1)
    # L0 goes with x; each 1-D exponent is clamped to [-40, 40] so the product stays normal
    ex = torch.exp((L0[..., None] + gx[..., None] * u + 0.5 * hxx[..., None] * u * u).clamp(-40, 40))
    ey = torch.exp((gy[..., None] * v + 0.5 * hyy[..., None] * v * v).clamp(-40, 40))
    model = (ey * ok[..., None])[..., :, None] * ex[..., None, :]
    return torch.where(win <= 0, model, win)


def dark_offsets(scores: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                 blur_kernel_size: int = 11) -> torch.Tensor:
    """DARK (Zhang et al. 2020): Gaussian modulation (blur), log, second-order Taylor step.

    Works on a (kernel + 2)-wide window per peak; only the 3x3 blurred values around the
    peak are computed (two small matrix products). Off-map and non-positive pixels are first
    filled by the Gaussian fitted at the peak, which removes the bias that zero padding at the
    border and 3-sigma truncation of the target would give. blur_kernel_size <= 1: no blur.
    """
    scores = scores.float()
    kr = max(blur_kernel_size, 1) // 2
    win, _ = gather_window(scores, x, y, max(kr + 1, 2))
    win = gaussian_fill(scores, x, y, win)
    if kr == 0:
        win = win[..., 1:-1, 1:-1]
    if kr > 0:
        rows = _blur_rows(blur_kernel_size, win.device)  # [3, P]
        win = rows @ win @ rows.T
    return newton_offsets(win.clamp_min(LOG_EPS).log())


def _blur_rows(size: int, device) -> torch.Tensor:
    """[3, size + 2]: row i applies the kernel centred at window position i + size // 2."""
    k = blur_kernel(size, device)
    rows = torch.zeros(3, size + 2, device=device)
    for i in range(3):
        rows[i, i:i + size] = k
    return rows


def soft_argmax(scores: torch.Tensor) -> torch.Tensor:
    """Integral decoding: expected (x, y) [B, K, 2] heatmap px under p = scores / sum(scores).

    Negative scores are clamped to 0; an all-zero channel gives the map centre. Differentiable.
    """
    B, K, H, W = scores.shape
    p = scores.to(torch.promote_types(scores.dtype, torch.float32)).clamp_min(0)  # float64 stays
    total = p.sum((-1, -2)).clamp_min(1e-12)
    xs = torch.arange(W, device=scores.device, dtype=p.dtype)
    ys = torch.arange(H, device=scores.device, dtype=p.dtype)
    ex = (p.sum(-2) * xs).sum(-1) / total
    ey = (p.sum(-1) * ys).sum(-1) / total
    empty = p.sum((-1, -2)) <= 0
    ex = torch.where(empty, torch.full_like(ex, (W - 1) / 2), ex)
    ey = torch.where(empty, torch.full_like(ey, (H - 1) / 2), ey)
    return torch.stack([ex, ey], dim=-1)


def local_soft_argmax_offsets(scores: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                              radius: int = 2) -> torch.Tensor:
    """Soft-argmax restricted to a (2r+1)^2 window around each peak (for multi-peak decoding)."""
    win, _ = gather_window(scores.float(), x, y, radius)
    p = win.clamp_min(0)
    d = torch.arange(-radius, radius + 1, device=scores.device, dtype=torch.float32)
    total = p.sum((-1, -2)).clamp_min(1e-12)
    ox = (p.sum(-2) * d).sum(-1) / total
    oy = (p.sum(-1) * d).sum(-1) / total
    return torch.stack([ox, oy], dim=-1)
