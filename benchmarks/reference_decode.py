"""A per-image reference for kpdet's bottom-up decoders, written from CenterNet's algorithm.

CenterNet (Zhou et al. 2019, "Objects as Points"; xingyizhou/CenterNet `multi_pose_decode` and
`ctdet_decode`) decodes one image at a time at test time. The steps, as this file does them for
one image, in heatmap px:

1. Peak suppression: a pixel survives when it equals the maximum of its kernel x kernel window
   (a stride-1 max-pool); every other pixel becomes 0.
2. Instances: the `max_instances` best surviving pixels of the centre map (integer x, y).
3. Regression: keypoint k of the instance at centre pixel n is n + d_k(n) (the displacement
   channels read at the centre pixel).
4. Keypoint peaks: per joint, the `max_peaks` best surviving pixels of its map, plus the offset
   head read there. Peaks not above the threshold are moved far away (score -1), as CenterNet
   does, so they are never the nearest.
5. Grouping: each regressed keypoint takes its joint's nearest peak when that peak's score is
   above the threshold and its distance is within the snap radius; otherwise it keeps its
   regressed location.

Adapted to kpdet's documented rule (kpdet/codecs/pose.py), so that both give the same
detections on the same maps:
- kpdet has no box (wh) head, so CenterNet's box becomes the extent of the instance's regressed
  keypoints: radius = max(2, snap_fraction * larger side of that extent) instead of
  0.3 * larger side of the regressed box, and CenterNet's "peak inside the box" test is dropped
  (with the keypoints' own extent as the box it would refuse the outermost keypoints' peaks).
- "above the threshold" is strict (score > threshold; CenterNet rejects score < threshold).
- Per-keypoint scores (CenterNet returns none): the peak's score when snapped, otherwise the
  keypoint map at the regressed location rounded to a pixel (clamped into the map).
- Instances are kept when the centre score is above the threshold (CenterNet filters later,
  in its post-processing, by a visualisation threshold).
- Output in input px: heatmap px times the stride (kpdet's msra codec; CenterNet maps back with
  its affine transform).

The points decode (no grouping) is steps 1 and 4 per class map: the `max_peaks` best surviving
pixels, plus the offset there, score > threshold.

This module is a benchmark baseline and a test oracle; the kpdet package never imports it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FAR = -10000.0  # where a peak below the threshold is moved, so it is never the nearest one


def suppress(heat: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """[C, H, W] -> the same with every pixel that is not its window's maximum set to 0."""
    pooled = F.max_pool2d(heat[None], kernel, stride=1, padding=kernel // 2)[0]
    return heat * (pooled == heat).float()


def best_pixels(heat: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `count` largest values per channel of [C, H, W] -> (x, y long, values), each [C, count]."""
    C, H, W = heat.shape
    values, index = heat.reshape(C, H * W).topk(min(count, H * W), dim=1)
    return index % W, index // W, values


def read_at(field: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """field [C, 2, H, W] read at pixels x, y [C, M] -> [C, M, 2]."""
    C = field.shape[0]
    rows = torch.arange(C)[:, None]
    return torch.stack([field[rows, 0, y, x], field[rows, 1, y, x]], -1)


def points_one_image(scores, offsets, stride, max_peaks=100, threshold=0.1, kernel=3, nms=suppress):
    """scores [C, H, W] activated, offsets [C, 2, H, W] heatmap px, stride (sx, sy) input px per
    heatmap px -> {"points" [C, M, 2] input px, "scores" [C, M], "keep" [C, M]}. `nms`: step 1 (the
    benchmark swaps in kpdet's to tell batching from the suppression kernel)."""
    x, y, values = best_pixels(nms(scores.float(), kernel), max_peaks)
    located = torch.stack([x, y], -1).float() + read_at(offsets.float(), x, y)
    return {"points": located * torch.tensor(stride), "scores": values, "keep": values > threshold}


def pose_one_image(scores, offsets, displacements, stride, max_instances=20, threshold=0.1, kernel=3,
                   snap_fraction=0.3, max_peaks=30, nms=suppress):
    """One image: scores [K + 1, H, W] activated (centre last), offsets [K + 1, 2, H, W] and
    displacements [K, 2, H, W] heatmap px -> {"keypoints" [N, K, 2] input px, "scores" [N, K],
    "instance_scores" [N], "keep" [N]} (the module docstring's steps; `nms` does step 1)."""
    scores = scores.float()
    K = scores.shape[0] - 1
    H, W = scores.shape[1:]
    peaks = nms(scores, kernel)
    cx, cy, centre_scores = (t[0] for t in best_pixels(peaks[K:], max_instances))  # [N]
    N = cx.shape[0]
    at_centres = displacements[:, :, cy, cx].float().permute(2, 0, 1)  # [N, K, 2], read at each centre
    regressed = torch.stack([cx, cy], -1).float()[:, None] + at_centres
    kx, ky, kv = best_pixels(peaks[:K], max_peaks)  # [K, J]
    found = torch.stack([kx, ky], -1).float() + read_at(offsets[:K].float(), kx, ky)  # [K, J, 2]
    weak = kv <= threshold
    found = found.masked_fill(weak[..., None], FAR)
    kv = kv.masked_fill(weak, -1.0)
    distance = ((regressed[:, :, None] - found[None]) ** 2).sum(-1).sqrt()  # [N, K, J]
    nearest, j = distance.min(-1)
    extent = (regressed.amax(1) - regressed.amin(1)).amax(-1)  # [N]
    radius = (snap_fraction * extent).clamp_min(2.0)[:, None]
    joint = torch.arange(K)[None].expand(N, K)
    peak_score = kv[joint, j]
    snapped = (peak_score > threshold) & (nearest <= radius)
    location = torch.where(snapped[..., None], found[joint, j], regressed)
    rx = regressed[..., 0].round().clamp(0, W - 1).long()
    ry = regressed[..., 1].round().clamp(0, H - 1).long()
    there = scores[joint, ry, rx]
    return {"keypoints": location * torch.tensor(stride), "scores": torch.where(snapped, peak_score, there),
            "instance_scores": centre_scores, "keep": centre_scores > threshold}


def per_image(decode, *batched, **params) -> dict[str, torch.Tensor]:
    """Run a one-image decode over the batch dimension of every tensor in `batched` (a Python
    loop, as CenterNet's test loop), stacking the results -> the batched decoder's dict."""
    outs = [decode(*(t[b] for t in batched), **params) for b in range(batched[0].shape[0])]
    return {key: torch.stack([o[key] for o in outs]) for key in outs[0]}
