"""Whole-image pictures of bottom-up validation (data.mode=bottom_up, tasks points and pose): uint8 RGB
[H, W, 3] drawn with OpenCV on the letterboxed network input, everything in input px.

Marks: a filled disc (radius 2) is a ground-truth point, a tilted cross (5 px) a decoded peak; the
colour is the class (points) or heatmap channel (peaks) from PALETTE, or the instance (skeletons: each
instance's keypoints and bones in one colour, so a bone between two colours never occurs). Pixels
masked out of the loss (crowd regions, instances without labelled keypoints) are shown at half
brightness. Drawing is not anti-aliased: every mark pixel has its colour exactly.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kpdet.vis.draw import denormalize

# ten distinct colours (matplotlib's tab10), cycled past the tenth class, channel or instance
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
DISC_RADIUS = 2
CROSS_SIZE = 5


def palette_colour(index: int) -> tuple[int, int, int]:
    return PALETTE[int(index) % len(PALETTE)]


def base_picture(image, ignore=None) -> np.ndarray:
    """Normalised image [3, H, W] -> uint8 [H, W, 3]; pixels where ignore [H, W] > 0 at half brightness."""
    picture = denormalize(image)
    if ignore is not None:
        masked = np.asarray(ignore) > 0
        picture[masked] = picture[masked] // 2
    return picture


def draw_marks(picture: np.ndarray, points, labels, mark: str = "disc") -> np.ndarray:
    """A copy of `picture` with one mark per point: points [P, 2] input px, labels [P] (palette index);
    mark "disc" (ground truth) or "cross" (a decoded peak)."""
    import cv2

    out = np.ascontiguousarray(picture.copy())
    points, labels = np.asarray(points, dtype=np.float64).reshape(-1, 2), np.asarray(labels).reshape(-1)
    finite = np.isfinite(points).all(1)  # a diverged model's points are left out, not a crash
    for (x, y), label in zip(points[finite], labels[finite]):
        centre, colour = (int(round(x)), int(round(y))), palette_colour(label)
        if mark == "disc":
            cv2.circle(out, centre, DISC_RADIUS, colour, -1, cv2.LINE_8)
        elif mark == "cross":
            cv2.drawMarker(out, centre, colour, cv2.MARKER_TILTED_CROSS, CROSS_SIZE, 1, cv2.LINE_8)
        else:
            raise ValueError(f"mark must be 'disc' or 'cross', got {mark!r}")
    return out


def draw_instances(picture: np.ndarray, keypoints, visible,
                   skeleton: Sequence[tuple[int, int]]) -> np.ndarray:
    """A copy of `picture` with each instance n in palette colour n: bones (skeleton pairs with both ends
    visible) as 1 px lines, keypoints as discs. keypoints [N, K, 2] input px, visible [N, K]."""
    import cv2

    out = np.ascontiguousarray(picture.copy())
    keypoints = np.asarray(keypoints, dtype=np.float64)
    visible = (np.asarray(visible) > 0) & np.isfinite(keypoints).all(-1)
    for n in range(len(keypoints)):
        colour = palette_colour(n)
        points = [(int(round(x)), int(round(y))) for x, y in np.nan_to_num(keypoints[n], posinf=0, neginf=0)]
        for a, b in skeleton:
            if visible[n, a] and visible[n, b]:
                cv2.line(out, points[a], points[b], colour, 1, cv2.LINE_8)
        for point, shown in zip(points, visible[n]):
            if shown:
                cv2.circle(out, point, DISC_RADIUS, colour, -1, cv2.LINE_8)
    return out


def image_row(pictures: Sequence[np.ndarray], captions: Sequence[str], columns: int = 4) -> np.ndarray:
    """Pictures of one size, each under a 13 px caption strip, `columns` to a row (black padding).
    Returns uint8 [rows * (H + 13), min(columns, N) * W, 3]."""
    from kpdet.vis.panels import _caption, _grid

    cells = [_caption(p, text) for p, text in zip(pictures, captions)]
    return _grid(cells, min(columns, len(cells)))
