"""Many instances per heatmap channel (bottom-up point objects): per-instance maps merged per class."""
from __future__ import annotations

import torch


def encode_point_maps(codec, points: torch.Tensor, classes: torch.Tensor, visible: torch.Tensor):
    """points [B, M, 2] input px, classes [B, M, C] one-hot (zero rows: padding), visible [B, M] ->
    (targets, weights [B, C] all 1: every class map is taught, an empty one as background).

    targets: heatmaps [B, C, H, W], the pixel-wise maximum of the Gaussians of the points of each
    class (CenterNet), so each point keeps its 1.0 peak (one_positive codecs). With an offset codec
    (kpdet.codecs.offset) targets = (heatmaps, offsets [B, C, 2, H, W], mask [B, C, H, W]): at a
    pixel trained for several points of one class the offset target is their mean (only touching
    points of one class share a pixel). No loop over images or points.
    """
    visible = (visible > 0) & (classes.sum(-1) > 0)
    encoded, weights = codec.encode(points, visible)
    heat = encoded[0] if isinstance(encoded, tuple) else encoded
    B, M, H, W = heat.shape
    C = classes.shape[-1]
    label = classes.argmax(-1)  # padding rows -> 0, with an all-zero map: no effect on the maximum
    index = label[..., None].expand(B, M, H * W)
    maps = heat.new_zeros(B, C, H * W).scatter_reduce(1, index, heat.flatten(2), "amax").view(B, C, H, W)
    ones = heat.new_ones(B, C)
    if not isinstance(encoded, tuple):
        return maps, ones
    _, offsets, mask = encoded
    count = heat.new_zeros(B, C, H * W).scatter_add(1, index, mask.flatten(2))
    total = heat.new_zeros(B, C, 2 * H * W).scatter_add(
        1, label[..., None].expand(B, M, 2 * H * W), (offsets * mask[:, :, None]).flatten(2))
    mean = total.view(B, C, 2, H * W) / count[:, :, None].clamp_min(1.0)
    return (maps, mean.view(B, C, 2, H, W), (count > 0).float().view(B, C, H, W)), ones


def decode_points(codec, scores: torch.Tensor, offsets: torch.Tensor | None = None, max_peaks: int = 100,
                  threshold: float = 0.1, kernel: int = 3) -> dict[str, torch.Tensor]:
    """Every point of every class: kernel x kernel max-pool suppression, the max_peaks best peaks
    per class map, score > threshold (CenterNet's decoding).

    scores [B, C, H, W] activated; offsets [B, C, 2, H, W] from an offset head (location = peak +
    offset) or None (the codec's refiner). Batched, no loop over images -> dict of padded tensors:
    "points" [B, C, M, 2] input px, "scores" [B, C, M], "keep" [B, C, M] bool (score > threshold).
    """
    from .offset import gather_offsets
    from .peaks import local_maxima

    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"the peak suppression window must be odd and >= 1, got {kernel}")
    scores = scores.float()
    B, C, H, W = scores.shape
    values, index = local_maxima(scores, kernel).flatten(2).topk(min(max_peaks, H * W), dim=-1)
    x, y = index % W, index // W
    inner = getattr(codec, "codec", codec)  # an OffsetCodec's heatmap codec
    shift = gather_offsets(offsets.float(), x, y) if offsets is not None else inner.offsets(scores, x, y)
    points = inner.to_input(torch.stack([x, y], -1).float() + shift)
    return {"points": points, "scores": values, "keep": values > threshold}
