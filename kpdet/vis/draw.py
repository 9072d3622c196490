"""Pictures of predictions: uint8 RGB arrays [H, W, 3] drawn with OpenCV."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
GT_COLOUR = (40, 220, 40)
PRED_COLOUR = (240, 40, 40)


def denormalize(image) -> np.ndarray:
    """Normalised tensor/array [3, H, W] -> uint8 RGB [H, W, 3]."""
    array = np.asarray(image, dtype=np.float32).transpose(1, 2, 0)
    return np.clip((array * IMAGENET_STD + IMAGENET_MEAN) * 255.0, 0, 255).astype(np.uint8)


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, visible: np.ndarray,
                   skeleton: Sequence[tuple[int, int]], colour=PRED_COLOUR, radius: int = 2) -> np.ndarray:
    """Dots at visible keypoints [K, 2] (image px) joined by skeleton lines; returns a copy."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    points = [tuple(int(round(v)) for v in p) for p in np.asarray(keypoints)]
    for a, b in skeleton:
        if visible[a] and visible[b]:
            cv2.line(out, points[a], points[b], colour, 1, cv2.LINE_AA)
    for point, shown in zip(points, visible):
        if shown:
            cv2.circle(out, point, radius, colour, -1, cv2.LINE_AA)
    return out


def heatmap_overlay(image: np.ndarray, scores: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Max over keypoints of scores [K, h, w], coloured (JET) and blended over image [H, W, 3].

    Scores are shown on the targets' absolute [0, 1] scale, not stretched per crop, so a
    model that outputs a near-constant 0.1 looks flat rather than confident.
    """
    import cv2

    peak = np.clip(np.asarray(scores, dtype=np.float32).max(axis=0), 0.0, 1.0)
    peak = cv2.resize(peak, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((peak * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return (image * (1 - alpha) + colour * alpha).astype(np.uint8)


def prediction_panel(images, gt_keypoints, gt_visible, pred_keypoints, scores,
                     skeleton: Sequence[tuple[int, int]]) -> np.ndarray:
    """One row per crop: [crop with GT (green) and prediction (red) | heatmap overlay].

    images [N, 3, H, W] normalised; keypoints [N, K, 2] crop px; scores [N, K, h, w].
    Returns uint8 [N * H, 2 * W, 3].
    """
    rows = []
    for i in range(len(images)):
        crop = denormalize(images[i])
        visible = np.asarray(gt_visible[i]) > 0
        drawn = draw_keypoints(crop, gt_keypoints[i], visible, skeleton, GT_COLOUR)
        drawn = draw_keypoints(drawn, pred_keypoints[i], np.ones_like(visible), skeleton, PRED_COLOUR)
        rows.append(np.concatenate([drawn, heatmap_overlay(crop, scores[i])], axis=1))
    return np.concatenate(rows, axis=0)
