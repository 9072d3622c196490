"""Distance metrics in image pixels: PCK, EPE, RMSE (DeepLabCut's), per-keypoint tables.

Shapes: pred, gt [N, K, 2] (x, y in image px), visible [N, K] (bool, or float where > 0
means labelled), norm [N] (px). Inputs may be numpy arrays or torch tensors (any device);
results are numpy float64 / Python floats. A keypoint counts as labelled when visible > 0
and its ground-truth coordinates are finite (DeepLabCut marks unlabelled points with NaN).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_PCK_THRESHOLDS = (0.05, 0.1, 0.2)


def as_numpy(x) -> np.ndarray:
    """numpy float64 copy of a numpy array, torch tensor (any device) or nested list."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def labelled_mask(gt, visible) -> np.ndarray:
    """[N, K] bool: visible > 0 and finite ground truth."""
    gt = as_numpy(gt)
    return (as_numpy(visible) > 0) & np.isfinite(gt).all(axis=-1)


def distances(pred, gt) -> np.ndarray:
    """[N, K] Euclidean distance between pred and gt, image px."""
    return np.linalg.norm(as_numpy(pred) - as_numpy(gt), axis=-1)


def bbox_longer_side(bbox) -> np.ndarray:
    """[N, 4] boxes (x, y, w, h) -> [N] max(w, h): the PCK normaliser of the contract."""
    bbox = as_numpy(bbox)
    return np.maximum(bbox[..., 2], bbox[..., 3])


def _pck_mask(gt, visible, norm) -> np.ndarray:
    """Labelled keypoints of samples with a usable normaliser (finite, > 0).

    Samples with norm <= 0 are left out rather than scored against a zero radius
    (MMPose's keypoint_pck_accuracy does the same).
    """
    norm = as_numpy(norm)
    ok = np.isfinite(norm) & (norm > 0)
    return labelled_mask(gt, visible) & ok[:, None]


def pck_hits(pred, gt, visible, norm, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-keypoint PCK events at one threshold -> (hit [N, K], scored [N, K]), both bool.

    hit[n, k] = ||pred - gt|| <= threshold * norm[n]; scored marks the keypoints PCK counts
    (labelled, in samples with a usable normaliser). Read hit only where scored.
    """
    return distances(pred, gt) <= threshold * as_numpy(norm)[:, None], _pck_mask(gt, visible, norm)


def pck_per_keypoint(pred, gt, visible, norm, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-keypoint PCK at one threshold.

    hit[n, k] = ||pred - gt|| <= threshold * norm[n], over labelled keypoints.
    Returns (pck [K], count [K]): pck[k] = hits / count, NaN where count is 0.
    """
    hit, mask = pck_hits(pred, gt, visible, norm, threshold)
    count = mask.sum(axis=0)
    hits = (hit & mask).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, hits / np.maximum(count, 1), np.nan), count


def pck(pred, gt, visible, norm, thresholds: Sequence[float] = DEFAULT_PCK_THRESHOLDS) -> dict:
    """PCK@t: fraction of all labelled keypoints with ||pred - gt|| <= t * norm.

    norm [N] is, per the contract, the longer side of the instance box
    (`bbox_longer_side`). The fraction pools all keypoints (micro average); MMPose's
    `keypoint_pck_accuracy` instead averages the per-keypoint accuracies.
    Returns {"PCK@0.05": float, ...}; NaN when nothing is labelled.
    """
    out = {}
    for t in thresholds:
        acc, count = pck_per_keypoint(pred, gt, visible, norm, t)
        total = count.sum()
        out[f"PCK@{t:g}"] = float(np.nansum(acc * count) / total) if total else math.nan
    return out


def epe(pred, gt, visible) -> float:
    """End-point error: mean ||pred - gt|| in image px over labelled keypoints (NaN if none)."""
    mask = labelled_mask(gt, visible)
    return float(distances(pred, gt)[mask].mean()) if mask.any() else math.nan


def rmse_px(pred, gt, visible, confidences=None, pcutoff: float | None = None) -> float:
    """The "RMSE" DeepLabCut reports, in image px.

    DeepLabCut calls the mean Euclidean error "RMSE": its `pairwisedistances` takes
    sqrt(dx^2 + dy^2) per (image, body part) and the train/test error is the nanmean
    over all labelled points (evaluate.py). So this equals `epe`, not the square root
    of a mean squared error. With `pcutoff`, only points whose confidence [N, K] is
    >= pcutoff count (DLC's "with p-cutoff" figure).
    """
    mask = labelled_mask(gt, visible)
    if pcutoff is not None:
        mask &= as_numpy(confidences) >= pcutoff
    return float(distances(pred, gt)[mask].mean()) if mask.any() else math.nan


def distance_metrics(pred, gt, visible, norm, thresholds: Sequence[float] = DEFAULT_PCK_THRESHOLDS) -> dict:
    """Flat dict for metrics.json: PCK@t for each t, "EPE" and "RMSE" (px)."""
    out = pck(pred, gt, visible, norm, thresholds)
    out["EPE"] = epe(pred, gt, visible)
    out["RMSE"] = rmse_px(pred, gt, visible)
    return out


def per_keypoint_table(pred, gt, visible, norm, names: Sequence[str],
                       thresholds: Sequence[float] = DEFAULT_PCK_THRESHOLDS,
                       total: bool = True) -> list[dict]:
    """One row per keypoint: {"name", "n", "PCK@t"..., "EPE" (px)}.

    n counts the labelled keypoints that PCK scores (samples with norm > 0); EPE uses
    every labelled keypoint, as `epe` does.
    With total=True a last row "all" holds the pooled figures, equal to `pck` / `epe`.
    """
    dist = distances(pred, gt)
    labelled = labelled_mask(gt, visible)
    n_pck = _pck_mask(gt, visible, norm).sum(axis=0)
    per_t = {f"PCK@{t:g}": pck_per_keypoint(pred, gt, visible, norm, t)[0] for t in thresholds}
    rows = []
    for k, name in enumerate(names):
        d = dist[:, k][labelled[:, k]]
        row = {"name": name, "n": int(n_pck[k])}
        row.update({key: float(acc[k]) for key, acc in per_t.items()})
        row["EPE"] = float(d.mean()) if d.size else math.nan
        rows.append(row)
    if total:
        rows.append({"name": "all", "n": int(n_pck.sum()), **pck(pred, gt, visible, norm, thresholds),
                     "EPE": epe(pred, gt, visible)})
    return rows


def _fmt(value) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def format_rows(rows: Sequence[dict]) -> str:
    """Aligned text table of a list of dicts sharing keys (e.g. `per_keypoint_table`)."""
    if not rows:
        return ""
    keys = list(rows[0])
    cells = [keys] + [[_fmt(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(keys))]
    lines = ["  ".join(c[i].rjust(widths[i]) if i else c[i].ljust(widths[i]) for i in range(len(keys)))
             for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_table(metrics: dict) -> str:
    """Two-column text table of a flat metrics dict ({"AP": 0.71, "PCK@0.1": 0.93, ...})."""
    return format_rows([{"metric": k, "value": v} for k, v in metrics.items()])
