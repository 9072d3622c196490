"""Multi-peak decoding for point detection: every instance of every keypoint class (as CenterNet)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def local_maxima(scores: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """scores [B, K, H, W] with every pixel that is not the maximum of its kernel x kernel
    neighbourhood set to 0 (CenterNet's max-pool suppression)."""
    pooled = F.max_pool2d(scores, kernel, stride=1, padding=kernel // 2)
    return scores * (scores == pooled)


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
