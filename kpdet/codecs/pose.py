"""Multi-instance pose, bottom-up (CenterNet's multi_pose, Zhou et al. 2019): K keypoint maps plus one
instance-centre map, centre-to-keypoint displacements, grouping by snapping to keypoint peaks.

Head output layout (data.bottom_up.task=pose): the heatmap part for C = K + 1 channels (K keypoint
logits, then the centre's; with model.offset, 3C channels as kpdet.codecs.offset), then 2K
displacement channels (dx, dy of keypoint k at channel 2k, 2k + 1), in heatmap px, read at an
instance's centre pixel: keypoint k of the instance centred at integer pixel n is n + d_k(n).

Decoding: the centre map's peaks (max-pool suppression, top-N, score > threshold) are the
instances (instance score = centre score); each regresses its K keypoints; a regressed keypoint
snaps to the nearest peak of its keypoint map (score > threshold) within
max(2, snap_fraction * instance size) heatmap px (instance size = the larger side of the extent
of its regressed keypoints; CenterNet snaps within the regressed box), taking that peak's
sub-pixel location and score; otherwise it keeps the regressed location with the keypoint map's
score at that pixel. Batched over images, instances and keypoints.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .flip import flip_displacements, flip_heatmaps
from .instances import encode_point_maps
from .offset import gather_offsets
from .peaks import local_maxima


def split_pose_outputs(outputs: torch.Tensor, num_keypoints: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, heat + 2K, H, W] -> (heatmap part [B, heat, H, W], displacements [B, K, 2, H, W])."""
    B, _, H, W = outputs.shape
    K = num_keypoints
    return outputs[:, :-2 * K], outputs[:, -2 * K:].reshape(B, K, 2, H, W)


def displacement_targets(codec, keypoints: torch.Tensor, visible: torch.Tensor,
                         centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """keypoints [B, M, K, 2], visible [B, M, K] (0 for padding), centres [B, M, 2], input px ->
    (targets [B, K, 2, H, W]: keypoint - centre pixel in heatmap px at each instance's centre pixel
    (the mean where two centres share a pixel), mask [B, K, H, W]: 1 where trained)."""
    W, H = codec.heatmap_size
    B, M, K, _ = keypoints.shape
    near = torch.floor(codec.to_heatmap(centres.float()) + 0.5)  # [B, M, 2]
    inside = (near[..., 0] >= 0) & (near[..., 0] < W) & (near[..., 1] >= 0) & (near[..., 1] < H)
    valid = ((visible > 0) & inside[..., None]).float()  # [B, M, K]
    d = (codec.to_heatmap(keypoints.float()) - near[:, :, None]).nan_to_num(0.0) * valid[..., None]
    index = (near[..., 1].clamp(0, H - 1) * W + near[..., 0].clamp(0, W - 1)).long()  # [B, M]
    total = d.new_zeros(B, K, 2, H * W).scatter_add(3, index[:, None, None, :].expand(B, K, 2, M),
                                                    d.permute(0, 2, 3, 1))
    count = d.new_zeros(B, K, H * W).scatter_add(2, index[:, None, :].expand(B, K, M), valid.transpose(1, 2))
    targets = total / count[:, :, None].clamp_min(1.0)
    return targets.view(B, K, 2, H, W), (count > 0).float().view(B, K, H, W)


def encode_pose_targets(codec, keypoints: torch.Tensor, visible: torch.Tensor, centres: torch.Tensor,
                        present: torch.Tensor):
    """keypoints [B, M, K, 2], visible [B, M, K], centres [B, M, 2] (input px), present [B, M] ->
    ((heatmap targets of the K + 1 maps, as encode_point_maps gives them for the codec, displacement
    targets [B, K, 2, H, W], displacement mask [B, K, H, W]), weights [B, K + 1])."""
    B, M, K, _ = keypoints.shape
    visible = visible * present[..., None]
    points = torch.cat([keypoints, centres[:, :, None]], 2).reshape(B, M * (K + 1), 2)
    shown = torch.cat([visible, present[..., None]], 2).reshape(B, M * (K + 1))
    classes = torch.eye(K + 1, device=keypoints.device).expand(B, M, K + 1, K + 1)
    classes = classes.reshape(B, M * (K + 1), K + 1)
    maps, weights = encode_point_maps(codec, points, classes, shown)
    inner = getattr(codec, "codec", codec)
    displacements, mask = displacement_targets(inner, keypoints, visible, centres)
    return (maps, displacements, mask), weights


def flip_pose_back(codec, scores: torch.Tensor, displacements: torch.Tensor,
                   flip_index: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The outputs of a mirrored whole image mapped back to the original (flip testing, CenterNet's
    multi_pose `flip_test`): scores [B, K + 1, H, W] (K keypoint maps, centre last) and displacements
    [B, K, 2, H, W] -> the same shapes. Keypoint k takes the mirror's channel flip_index[k], the
    centre map its own; dx changes sign (kpdet.codecs.flip.flip_displacements).

    The shift is the codec's `flip_shift`, as for top-down crops, because nothing between the
    two passes differs from a crop. The mirrored pass runs on the input tensor mirrored,
    x' = W_in - 1 - x in input px. The letterbox (kpdet/data/bottom_up.py, `letterbox_matrix`)
    only maps image px to input px; the heatmap sees input px through the codec alone: targets
    are `codec.encode` / `codec.to_heatmap` of input px (encode_pose_targets,
    displacement_targets) and decode_pose returns `codec.to_input`, so u = a x + b as for a
    crop (kpdet/codecs/base.py). A point at input x lies at u = a x + b in the original pass and
    at u' = a (W_in - 1 - x) + b in the mirrored one; mirroring the heatmap (W - 1 - u') puts it
    at u + (W - 1 - a (W_in - 1) - 2b), so shifting by codec.flip_shift = -(W - 1 - a (W_in - 1)
    - 2b) brings it home (msra at stride 4: W = W_in / 4, a = 1/4, shift +0.75 px; udp: 0). The
    letterbox itself is mirror-symmetric (it centres the image's extent on the input's centre
    column (W_in - 1) / 2, and training's flip is x' = W_in - 1 - x about that column), so the
    mirrored input is the letterbox of the mirrored image, the kind of input training showed.
    For a displacement d' read at mirrored pixel n', the keypoint sits at n' + d' there, i.e. at
    u = c - n' - d' with c = a (W_in - 1) + 2b; at the original pixel n = c - n' this is
    n + (-d'): dx negated, dy kept, moved like the maps (a non-integer shift interpolates
    linearly between neighbouring pixels).
    """
    shift = getattr(codec, "codec", codec).flip_shift
    K = displacements.shape[1]
    maps = flip_heatmaps(scores, [*flip_index, K], shift)
    return maps, flip_displacements(displacements, flip_index, shift)


def _best(suppressed: torch.Tensor, count: int, width: int):
    """Top `count` values per channel of suppressed maps [B, C, H * W] -> (x, y long, values) [B, C, M]."""
    values, index = suppressed.topk(min(count, suppressed.shape[-1]), dim=-1)
    return index % width, index // width, values


def decode_pose(codec, scores: torch.Tensor, offsets: torch.Tensor | None, displacements: torch.Tensor,
                max_instances: int = 20, threshold: float = 0.1, kernel: int = 3, snap_fraction: float = 0.3,
                max_peaks: int = 30) -> dict[str, torch.Tensor]:
    """scores [B, K + 1, H, W] activated (centre last), offsets [B, K + 1, 2, H, W] or None,
    displacements [B, K, 2, H, W] -> {"keypoints" [B, N, K, 2] input px, "scores" [B, N, K],
    "instance_scores" [B, N], "keep" [B, N] (centre score > threshold)}; module docstring."""
    scores = scores.float()
    B, C, H, W = scores.shape
    K = C - 1
    inner = getattr(codec, "codec", codec)
    suppressed = local_maxima(scores, kernel).flatten(2)  # [B, K + 1, HW], all maps in one pass
    cx, cy, centre_scores = (t[:, 0] for t in _best(suppressed[:, K:], max_instances, W))  # [B, N]
    flat = displacements.float().flatten(3)  # [B, K, 2, HW]
    at_centre = flat.gather(3, (cy * W + cx)[:, None, None, :].expand(B, K, 2, cx.shape[1]))
    regressed = torch.stack([cx, cy], -1)[:, :, None].float() + at_centre.permute(0, 3, 1, 2)  # [B, N, K, 2]
    kx, ky, kv = _best(suppressed[:, :K], max_peaks, W)  # [B, K, J]
    shift = gather_offsets(offsets[:, :K].float(), kx, ky) if offsets is not None else inner.offsets(
        scores[:, :K], kx, ky)
    peaks = torch.stack([kx, ky], -1).float() + shift  # [B, K, J, 2]
    distance = (regressed[:, :, :, None] - peaks[:, None]).norm(dim=-1)  # [B, N, K, J]
    distance = distance.masked_fill(~(kv > threshold)[:, None], float("inf"))
    best, j = distance.min(-1)  # [B, N, K]
    extent = (regressed.amax(2) - regressed.amin(2)).amax(-1)  # [B, N]
    snapped = best <= (snap_fraction * extent).clamp_min(2.0)[..., None]
    index = j[..., None, None].expand(B, -1, K, 1, 2)
    snapped_loc = peaks[:, None].expand(B, j.shape[1], K, -1, 2).gather(3, index)[..., 0, :]
    snapped_score = kv[:, None].expand(B, j.shape[1], K, -1).gather(3, j[..., None])[..., 0]
    location = torch.where(snapped[..., None], snapped_loc, regressed)
    rx = regressed[..., 0].round().clamp(0, W - 1).long()
    ry = regressed[..., 1].round().clamp(0, H - 1).long()
    there = scores.flatten(2)[:, :K].gather(2, (ry * W + rx).permute(0, 2, 1)).permute(0, 2, 1)  # [B, N, K]
    return {"keypoints": inner.to_input(location), "scores": torch.where(snapped, snapped_score, there),
            "instance_scores": centre_scores, "keep": centre_scores > threshold}
