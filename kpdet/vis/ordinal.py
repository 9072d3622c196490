"""Pictures of an ordinal_xy prediction: each keypoint's x and y distributions as coloured strips."""
from __future__ import annotations

import numpy as np


def distribution_strips(px, py, gt_bins=None, peak: float = 1.0, row_height: int = 6) -> np.ndarray:
    """One sample's distributions -> uint8 RGB [K * row_height, N_x + 4 + N_y, 3].

    px [K, N_x], py [K, N_y]: values per bin (the panels pass `codec.near_mass`, the mass near
    each bin, in [0, 1]); one row per keypoint, x strip on the left, y strip on the right,
    coloured (JET) by value / peak clipped to [0, 1]: red is certain, dark blue nothing.
    gt_bins [K, 2] (x, y bin coordinates) or None: a white tick at the ground truth where finite.
    """
    import cv2

    strips = []
    for axis, probs in enumerate((np.asarray(px, np.float32), np.asarray(py, np.float32))):
        level = np.clip(probs / peak, 0.0, 1.0)
        strip = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
        strip = np.repeat(strip, row_height, axis=0).copy()
        if gt_bins is not None:
            for k, u in enumerate(np.asarray(gt_bins, np.float32)[:, axis]):
                if np.isfinite(u) and 0 <= round(float(u)) < probs.shape[1]:
                    strip[k * row_height:(k + 1) * row_height - 1, int(round(float(u)))] = 255
        strips.append(strip)
    gap = np.zeros((strips[0].shape[0], 4, 3), np.uint8)
    return np.concatenate([strips[0], gap, strips[1]], axis=1)
