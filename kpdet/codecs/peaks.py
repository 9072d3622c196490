"""Multi-peak decoding for point detection: every instance of every keypoint class (as CenterNet)."""
from __future__ import annotations

import torch


def window_max(scores: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """The maximum of each pixel's kernel x kernel window (odd kernel; pixels outside the map do
    not count) of [..., H, W]: the values of F.max_pool2d(scores, kernel, 1, kernel // 2).

    Two 1-D running maxima (along rows, then columns), 2 (kernel - 1) elementwise maxima written in
    place: a maximum is exact, so the values are max_pool2d's, ~15x faster on the CPU, where
    max_pool2d's NCHW kernel is slow (benchmarks/bottom_up_decode.py).
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"the peak suppression window must be odd and >= 1, got {kernel}")
    rows = scores.clone()
    for i in range(1, kernel // 2 + 1):  # rows[x] = max of scores[x - r .. x + r]
        torch.maximum(rows[..., i:], scores[..., :-i], out=rows[..., i:])
        torch.maximum(rows[..., :-i], scores[..., i:], out=rows[..., :-i])
    out = rows.clone()
    for i in range(1, kernel // 2 + 1):  # out[y] = max of rows[y - r .. y + r]
        torch.maximum(out[..., i:, :], rows[..., :-i, :], out=out[..., i:, :])
        torch.maximum(out[..., :-i, :], rows[..., i:, :], out=out[..., :-i, :])
    return out


def local_maxima(scores: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """scores [B, K, H, W] with every pixel that is not the maximum of its kernel x kernel
    neighbourhood set to 0 (CenterNet's max-pool suppression): scores * (scores == window max),
    the flag and the product computed in place in the window-max buffer."""
    return window_max(scores, kernel).eq_(scores).mul_(scores)


def top_peaks(scores: torch.Tensor, max_peaks: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The max_peaks largest local maxima per channel -> (x, y long, values) [B, K, M].

    M = min(max_peaks, H * W); sorted by value, descending.
    """
    B, K, H, W = scores.shape
    values, index = local_maxima(scores).flatten(2).topk(min(max_peaks, H * W), dim=-1)
    return index % W, index // W, values


def find_peaks(scores: torch.Tensor, codec, max_peaks: int = 100,
               threshold: float = 0.1) -> list[dict[str, torch.Tensor]]:
    """Peaks of activated scores [B, K, H, W]: 3x3 max-pool suppression, top-k per class,
    score > threshold, sub-pixel refinement by the codec's refiner, input px by its map.

    Returns one dict per image: "keypoints" [N, 2] input px, "scores" [N], "labels" [N]
    (class = channel), sorted by class then score. Batched; only the final split into
    per-image lists loops over images.
    """
    scores = scores.float()
    x, y, values = top_peaks(scores, max_peaks)
    locs = torch.stack([x, y], dim=-1).float() + codec.offsets(scores, x, y)
    points = codec.to_input(locs)  # [B, K, M, 2]
    keep = values > threshold
    labels = torch.arange(scores.shape[1], device=scores.device)[None, :, None].expand_as(values)
    return [{"keypoints": points[b][keep[b]], "scores": values[b][keep[b]], "labels": labels[b][keep[b]]}
            for b in range(scores.shape[0])]


def encode_instances(codec, points: torch.Tensor, labels: torch.Tensor, visible: torch.Tensor,
                     num_classes: int, sizes: torch.Tensor | None = None) -> torch.Tensor:
    """Point-detection targets: many instances per class in one channel.

    points [B, N, 2] input px, labels [B, N] long class, visible [B, N], sizes optional
    [B, N, 2] (w, h) input px for CornerNet radii -> heatmaps [B, num_classes, H, W], the
    pixel-wise maximum of the instances' Gaussians of that class (as CenterNet). The codec's
    sigma must be one number here (per-keypoint lists index keypoints, not instances).
    """
    heat, weights = codec.encode(points, visible, sizes)  # [B, N, H, W]
    B, N, H, W = heat.shape
    out = heat.new_zeros(B, num_classes, H * W)
    index = labels.long().clamp(0, num_classes - 1)[..., None].expand(B, N, H * W)
    return out.scatter_reduce(1, index, heat.flatten(2), reduce="amax").view(B, num_classes, H, W)
