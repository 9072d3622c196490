"""TensorBoard panels as uint8 RGB arrays [H, W, 3] (OpenCV): per-keypoint heatmaps of one crop,
the worst validation crops with their image ids, a per-keypoint PCK bar chart."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kpdet.vis.draw import GT_COLOUR, PRED_COLOUR, denormalize, draw_keypoints, heatmap_overlay

TEXT = (255, 255, 255)


def _caption(image: np.ndarray, text: str, scale: float = 0.3) -> np.ndarray:
    """White text on a black strip above `image` (13 px tall)."""
    import cv2

    strip = np.zeros((13, image.shape[1], 3), dtype=np.uint8)
    cv2.putText(strip, text, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT, 1, cv2.LINE_AA)
    return np.concatenate([strip, image], axis=0)


def _grid(cells: list[np.ndarray], columns: int) -> np.ndarray:
    """Cells of one size, row-major, padded with black cells to full rows."""
    blank = np.zeros_like(cells[0])
    cells = cells + [blank] * (-len(cells) % columns)
    rows = [np.concatenate(cells[i:i + columns], axis=1) for i in range(0, len(cells), columns)]
    return np.concatenate(rows, axis=0)


def keypoint_heatmaps(image, scores, targets, names: Sequence[str], columns: int = 4) -> np.ndarray:
    """One cell per keypoint: [prediction | target] heatmaps over the crop, captioned with the name.

    image [3, H, W] normalised; scores, targets [K, h, w] on the [0, 1] scale.
    Returns uint8 [rows * (H + 13), columns * 2 * W, 3], rows = ceil(K / columns).
    """
    crop = denormalize(image)
    cells = []
    for k, name in enumerate(names):
        pair = np.concatenate([heatmap_overlay(crop, np.asarray(scores)[k:k + 1]),
                               heatmap_overlay(crop, np.asarray(targets)[k:k + 1])], axis=1)
        cells.append(_caption(pair, f"{name}: pred | target"))
    return _grid(cells, min(columns, len(cells)))


def worst_samples(images, gt_keypoints, gt_visible, pred_keypoints, errors, image_ids,
                  skeleton: Sequence[tuple[int, int]]) -> np.ndarray:
    """Crops side by side, GT green, prediction red, captioned "id <image id> err <error> px".

    images [N, 3, H, W] normalised; keypoints [N, K, 2] crop px; errors [N] (crop px), worst first.
    Returns uint8 [H + 13, N * W, 3].
    """
    cells = []
    for i in range(len(images)):
        visible = np.asarray(gt_visible[i]) > 0
        drawn = draw_keypoints(denormalize(images[i]), gt_keypoints[i], visible, skeleton, GT_COLOUR)
        drawn = draw_keypoints(drawn, pred_keypoints[i], visible, skeleton, PRED_COLOUR)
        cells.append(_caption(drawn, f"id {int(image_ids[i])} err {float(errors[i]):.1f}px"))
    return np.concatenate(cells, axis=1)


def pck_bars(values: Sequence[float], names: Sequence[str], bar: int = 14, height: int = 120,
             label_height: int = 60) -> np.ndarray:
    """Vertical bars, one per keypoint, `height` px for PCK 1 (a NaN draws no bar), names below.

    Returns uint8 [height + label_height, len(values) * bar, 3]: white background, blue bars.
    """

    width = len(values) * bar
    chart = np.full((height, width, 3), 255, dtype=np.uint8)
    for i, value in enumerate(values):
        if np.isfinite(value):
            top = height - int(round(np.clip(value, 0.0, 1.0) * height))
            chart[top:, i * bar + 1:(i + 1) * bar - 1] = (60, 90, 220)
    labels = np.full((bar, label_height, 3), 255, dtype=np.uint8)
    labels = np.concatenate([_vertical_text(labels.copy(), name) for name in names], axis=0)
    return np.concatenate([chart, np.ascontiguousarray(np.rot90(labels, k=1))], axis=0) if names else chart


def _vertical_text(strip: np.ndarray, text: str) -> np.ndarray:
    import cv2

    cv2.putText(strip, text[:12], (1, strip.shape[0] - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.28, (0, 0, 0), 1,
                cv2.LINE_AA)
    return strip
