"""Landmark metrics of the face-alignment literature (300W, WFLW, COFW, AFLW).

NME (normalised mean error) per sample n:
    NME_n = mean_{k labelled} ||pred[n,k] - gt[n,k]|| / norm[n]
reported as the mean of NME_n over samples, as a fraction (papers print it in %).
The normaliser is the inter-ocular distance (outer eye corners: WFLW 98-point
indices 60 and 72, 300W 68-point indices 36 and 45, 0-based) or the box size
sqrt(w * h) (`box_norm`).

AUC@T and FR@T (WFLW, Wu et al. 2018; the evaluation code of PIPNet, ADNet, STAR):
CED(x) = fraction of samples with NME_n <= x,
AUC@T = (1/T) * integral_0^T CED(x) dx, FR@T = 1 - CED(T) = fraction with NME_n > T.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from kpdet.metrics.distance import as_numpy, distances, labelled_mask

WFLW_OUTER_EYE_CORNERS = (60, 72)
W300_OUTER_EYE_CORNERS = (36, 45)
DEFAULT_NME_THRESHOLDS = (0.08, 0.1)


def interocular_norm(gt, left_idx: int, right_idx: int) -> np.ndarray:
    """gt [N, K, 2] -> [N] distance between keypoints left_idx and right_idx (px)."""
    gt = as_numpy(gt)
    return np.linalg.norm(gt[:, left_idx] - gt[:, right_idx], axis=-1)


def box_norm(bbox) -> np.ndarray:
    """[N, 4] boxes (x, y, w, h) -> [N] sqrt(w * h) (px).

    The convention of Bulat & Tzimiropoulos (2017, "How far are we from solving the
    2D & 3D face alignment problem?"), NME_box on AFLW2000-3D / 300W-LP: the box is
    the ground-truth face box; `landmark_box` gives the tight box of the labelled
    ground-truth landmarks when no box is annotated.
    """
    bbox = as_numpy(bbox)
    return np.sqrt(np.clip(bbox[..., 2], 0, None) * np.clip(bbox[..., 3], 0, None))


def landmark_box(gt, visible) -> np.ndarray:
    """Tight box [N, 4] (x, y, w, h) of each sample's labelled ground-truth landmarks.

    NaN for samples without a labelled landmark.
    """
    gt, mask = as_numpy(gt), labelled_mask(gt, visible)
    masked = np.where(mask[..., None], gt, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as wanted
        lo, hi = np.nanmin(masked, axis=1), np.nanmax(masked, axis=1)
    return np.concatenate([lo, hi - lo], axis=-1)


def nme(pred, gt, visible, norm) -> np.ndarray:
    """Per-sample NME [N]: mean over labelled landmarks of ||pred - gt|| / norm[n].

    NaN for a sample with no labelled landmark or a normaliser that is not > 0.
    """
    mask = labelled_mask(gt, visible)
    dist = np.where(mask, distances(pred, gt), 0.0)
    norm = as_numpy(norm)
    count = mask.sum(axis=1)
    ok = (count > 0) & np.isfinite(norm) & (norm > 0)
    safe = np.where(ok, norm * np.maximum(count, 1), 1.0)
    return np.where(ok, dist.sum(axis=1) / safe, np.nan)


def _valid(nme_values) -> np.ndarray:
    values = as_numpy(nme_values).reshape(-1)
    return values[np.isfinite(values)]


def nme_auc(nme_values, threshold: float = 0.1, step: float | None = 1e-4) -> float:
    """AUC@threshold of the cumulative error distribution, in [0, 1].

    step: the literature's evaluation samples CED on x = 0, step, ..., threshold
    (step 1e-4) and integrates numerically (Simpson there, trapezoid here; they
    differ by O(step / threshold)). step=None gives the exact integral,
    mean_n max(0, 1 - NME_n / threshold). NaN samples are dropped; NaN if none remain.
    """
    values = _valid(nme_values)
    if values.size == 0:
        return math.nan
    if step is None:
        return float(np.clip(1.0 - values / threshold, 0.0, None).mean())
    xs = np.linspace(0.0, threshold, int(round(threshold / step)) + 1)
    ced = np.searchsorted(np.sort(values), xs, side="right") / values.size  # fraction <= x
    area = float(((ced[1:] + ced[:-1]) * np.diff(xs)).sum() / 2.0)
    return area / threshold


def failure_rate(nme_values, threshold: float = 0.1) -> float:
    """FR@threshold: fraction of samples with NME > threshold (NaN samples dropped)."""
    values = _valid(nme_values)
    return float((values > threshold).mean()) if values.size else math.nan


def landmark_metrics(pred, gt, visible, norm, thresholds: Sequence[float] = DEFAULT_NME_THRESHOLDS,
                     step: float | None = 1e-4) -> dict:
    """Flat dict {"NME", "AUC@t", "FR@t" for t in thresholds}; NME as a fraction."""
    values = nme(pred, gt, visible, norm)
    finite = _valid(values)
    out = {"NME": float(finite.mean()) if finite.size else math.nan}
    for t in thresholds:
        out[f"AUC@{t:g}"] = nme_auc(values, t, step)
    for t in thresholds:
        out[f"FR@{t:g}"] = failure_rate(values, t)
    return out
