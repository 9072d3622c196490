"""TensorBoard image panels of a validation: prediction panel, one crop's per-keypoint heatmaps
(prediction | target; for the ordinal_xy head its x/y distributions instead), the worst crops by
error with image ids, per-keypoint PCK@0.1 bars."""
from __future__ import annotations

import numpy as np
import torch

from kpdet.vis import distribution_strips, prediction_panel
from kpdet.vis.panels import keypoint_heatmaps, pck_bars, worst_samples


@torch.no_grad()
def log_panels(logger, predictor, dataset, loader, codec, metrics: dict[str, float], step: int, count: int,
               device) -> None:
    """`count` crops for the prediction and worst-sample panels; the heatmaps of val crop 0."""
    samples = [dataset[i] for i in range(min(count, len(dataset)))]
    images = torch.stack([s["image"] for s in samples])
    keypoints, _, scores = predictor(images.to(device))
    ordinal = isinstance(scores, tuple)  # the ordinal_xy head: (p_x, p_y) over bins
    maps = codec.joint_map(scores) if ordinal else scores
    gt, visible = torch.stack([s["keypoints"] for s in samples]), torch.stack([s["visible"] for s in samples])
    logger.image("val/predictions", step, prediction_panel(
        images.numpy(), gt.numpy(), visible.numpy(), keypoints.cpu().numpy(), maps.cpu().numpy(),
        dataset.spec.skeleton))
    if ordinal:
        logger.image("val/distributions", step, distributions(codec, scores, gt[0], visible[0]))
    else:
        targets, _ = codec.encode(gt[:1].to(device), visible[:1].to(device))
        targets = targets[0] if isinstance(targets, tuple) else targets  # offset codecs: (heatmaps, ...)
        logger.image("val/heatmaps", step, keypoint_heatmaps(images[0].numpy(), scores[0].cpu().numpy(),
                                                             targets[0].cpu().numpy(), dataset.spec.names))
    logger.image("val/worst", step, worst_samples(*worst_crops(predictor, loader, count, device),
                                                  dataset.spec.skeleton))
    names = dataset.spec.names
    logger.image("val/pck_per_keypoint", step,
                 pck_bars([metrics.get(f"PCK@0.1/{n}", float("nan")) for n in names], names))


def distributions(codec, probs, gt: torch.Tensor, visible: torch.Tensor) -> np.ndarray:
    """Crop 0's x and y distributions (as the mass within +-window bins, the confidence's scale),
    one row per keypoint, the ground-truth bin ticked (ordinal_xy head)."""
    strips = [codec.near_mass(p[0]).cpu().numpy() for p in probs]
    bins = codec.to_bins(gt.float()).masked_fill(~(visible > 0)[:, None], float("nan"))
    return distribution_strips(*strips, bins.numpy())


@torch.no_grad()
def worst_crops(predictor, loader, count: int, device) -> tuple:
    """The `count` crops with the largest mean error over visible keypoints (crop px), worst first:
    (images, gt keypoints, visible, predicted keypoints, errors, image ids)."""
    kept: list[tuple] = []
    for batch in loader:
        keypoints, _, _ = predictor(batch["image"].to(device))
        keypoints, visible = keypoints.cpu(), batch["visible"] > 0
        distance = (keypoints - batch["keypoints"]).norm(dim=-1)
        error = (distance * visible).sum(-1) / visible.sum(-1).clamp(min=1)
        for i in range(len(error)):
            kept.append((float(error[i]), batch["image"][i], batch["keypoints"][i], batch["visible"][i],
                         keypoints[i], int(batch["image_id"][i])))
        kept = sorted(kept, key=lambda item: -item[0])[:count]
    errors, images, gt, visible, pred, ids = zip(*kept)
    stack = lambda items: torch.stack(items).numpy()  # noqa: E731
    return stack(images), stack(gt), stack(visible), stack(pred), np.array(errors), np.array(ids)
