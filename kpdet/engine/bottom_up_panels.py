"""TensorBoard panels of a bottom-up validation (data.bottom_up.task points or pose; task single keeps
the top-down panels, engine/panels.py): the first `count` validation images, whole, as the network
sees them (letterboxed, input px), drawn by kpdet/vis/whole_image.py:

- `val/ground_truth`: the labelled points (a disc in the class colour) or instances (skeletons, one
  colour per instance); regions masked out of the loss at half brightness.
- `val/peaks`: one cross per decoded peak above data.bottom_up.peak_threshold, in its channel's colour:
  for points the detections the metrics count; for pose the peaks of the K keypoint maps and of the
  centre map (last channel), before grouping.
- `val/skeletons` (pose): the grouped instances (centre score above the threshold), one colour each.
- `val/heatmaps`: image 0's maps, prediction | target per channel (pose: K keypoints, then the centre).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import default_collate

from kpdet.codecs.instances import decode_points, encode_point_maps
from kpdet.codecs.pose import decode_pose, encode_pose_targets
from kpdet.predict import OffsetPredictor, PosePredictor
from kpdet.vis.panels import keypoint_heatmaps
from kpdet.vis.whole_image import base_picture, draw_instances, draw_marks, image_row


@torch.no_grad()
def log_bottom_up_panels(logger, predictor, dataset, step: int, count: int, device, decoding: dict) -> None:
    """predictor: a PosePredictor (task pose) or the heatmap predictor (task points); decoding:
    build.pose_decoding's keywords (threshold, kernel and max_peaks serve the peaks of both tasks)."""
    batch = default_collate([dataset[i] for i in range(min(count, len(dataset)))])
    images, ids = batch["image"], batch["image_id"].tolist()
    pose = isinstance(predictor, PosePredictor)
    if pose:
        scores, offsets, displacements = predictor.outputs(images.to(device))
    elif isinstance(predictor, OffsetPredictor):
        scores, offsets = predictor.heatmaps_and_offsets(images.to(device))
    else:
        scores, offsets = predictor.heatmaps(images.to(device)), None
    peaks = decode_points(predictor.codec, scores, offsets, decoding["max_peaks"], decoding["threshold"],
                          decoding["kernel"])
    pictures = [base_picture(image, ignore) for image, ignore in zip(images.numpy(), batch["ignore"].numpy())]
    logger.image("val/ground_truth", step, ground_truth(pictures, batch, ids, dataset.spec.skeleton, pose))
    logger.image("val/peaks", step, peak_panel(pictures, peaks, ids))
    if pose:
        groups = decode_pose(predictor.codec, scores, offsets, displacements, **decoding)
        logger.image("val/skeletons", step, skeleton_panel(pictures, groups, ids, dataset.spec.skeleton))
    names = list(dataset.spec.names) + (["centre"] if pose else [])
    target = targets(predictor.codec, batch, device, pose)
    logger.image("val/heatmaps", step, keypoint_heatmaps(images[0].numpy(), scores[0].cpu().numpy(), target,
                                                         names))


def ground_truth(pictures: list, batch: dict, ids: list[int], skeleton, pose: bool):
    """Points: discs in class colours; pose: the present instances' skeletons."""
    drawn, captions = [], []
    for b, picture in enumerate(pictures):
        if pose:
            present = batch["present"][b] > 0
            drawn.append(draw_instances(picture, batch["keypoints"][b][present].numpy(),
                                        batch["visible"][b][present].numpy(), skeleton))
            captions.append(f"id {ids[b]}: {int(present.sum())} instances")
        else:
            real = (batch["labels"][b] >= 0) & (batch["visible"][b] > 0)
            points, labels = batch["keypoints"][b][real].numpy(), batch["labels"][b][real].numpy()
            drawn.append(draw_marks(picture, points, labels))
            captions.append(f"id {ids[b]}: {int(real.sum())} points")
    return image_row(drawn, captions)


def peak_panel(pictures: list, peaks: dict, ids: list[int]):
    """One cross per kept peak (decode_points' "keep"), coloured by channel."""
    keep = peaks["keep"].cpu()
    B, C, M = keep.shape
    channel = torch.arange(C)[:, None].expand(C, M)
    drawn, captions = [], []
    for b, picture in enumerate(pictures):
        drawn.append(draw_marks(picture, peaks["points"][b].cpu()[keep[b]].numpy(), channel[keep[b]].numpy(),
                                "cross"))
        captions.append(f"id {ids[b]}: {int(keep[b].sum())} peaks")
    return image_row(drawn, captions)


def skeleton_panel(pictures: list, groups: dict, ids: list[int], skeleton):
    """The kept instances of decode_pose, every keypoint drawn (OKS AP scores them all)."""
    drawn, captions = [], []
    for b, picture in enumerate(pictures):
        keep = groups["keep"][b].cpu()
        keypoints = groups["keypoints"][b].cpu()[keep].numpy()
        drawn.append(draw_instances(picture, keypoints, np.ones(keypoints.shape[:2], bool), skeleton))
        captions.append(f"id {ids[b]}: {int(keep.sum())} instances")
    return image_row(drawn, captions)


def targets(codec, batch: dict, device, pose: bool) -> torch.Tensor:
    """Image 0's heatmap targets [C, h, w] as the training step renders them."""
    take = lambda key: batch[key][:1].to(device)  # noqa: E731
    if pose:
        (maps, _, _), _ = encode_pose_targets(codec, take("keypoints"), take("visible"), take("centres"),
                                              take("present"))
    else:
        maps, _ = encode_point_maps(codec, take("keypoints"), take("classes"), take("visible"))
    maps = maps[0] if isinstance(maps, tuple) else maps  # offset codecs: (heatmaps, offsets, mask)
    return maps[0].cpu().numpy()
