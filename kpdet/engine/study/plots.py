"""Study plots as PNG (matplotlib, Agg, imported inside the functions). Each returns what it drew."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kpdet.metrics.distance import bbox_longer_side, pck

PCK_GRID = tuple(np.round(np.linspace(0.0, 0.3, 31), 3))


def pck_curve(predictions: dict[str, np.ndarray], thresholds=PCK_GRID) -> np.ndarray:
    """PCK at each threshold (norm: longer box side, as in metrics.json) from saved predictions."""
    gt = predictions["gt"]
    values = pck(predictions["keypoints"], gt[..., :2], gt[..., 2] > 0, bbox_longer_side(predictions["bbox"]),
                 [float(t) for t in thresholds])
    return np.array(list(values.values()))


def _figure(width: float = 6.4, height: float = 4.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height))


def plot_pck_curves(curves: dict[str, list[np.ndarray]], path: Path, thresholds=PCK_GRID,
                    title: str = "") -> dict[str, np.ndarray]:
    """curves: {loss: [PCK per threshold, one array per seed]} -> mean curve per loss, std band."""
    plt, fig, ax = _figure()
    drawn = {}
    for label, per_seed in curves.items():
        stack = np.stack(per_seed)
        mean = stack.mean(axis=0)
        ax.plot(thresholds, mean, label=f"{label} (n={len(stack)})")
        if len(stack) > 1:
            std = stack.std(axis=0, ddof=1)
            ax.fill_between(thresholds, mean - std, mean + std, alpha=0.2)
        drawn[label] = mean
    ax.set(xlabel="threshold (fraction of the longer box side)", ylabel="PCK", ylim=(0, 1.02),
           title=title or "PCK against threshold (mean, band = std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(plt, fig, path)
    return drawn


def plot_metric_vs_step(histories: dict[str, list[list[dict]]], metric: str, path: Path,
                        title: str = "") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """histories: {loss: [history per seed]} -> mean over seeds at the steps all seeds validated,
    band min..max; returns {loss: (steps, mean)}."""
    plt, fig, ax = _figure()
    drawn = {}
    for label, per_seed in histories.items():
        tables = [{e["step"]: e.get(metric, math.nan) for e in h} for h in per_seed if h]
        if not tables:
            continue
        steps = np.array(sorted(set.intersection(*(set(t) for t in tables))))
        if steps.size == 0:
            continue
        values = np.array([[t[s] for s in steps] for t in tables], dtype=float)
        mean = values.mean(axis=0)
        ax.plot(steps, mean, marker=".", label=f"{label} (n={len(tables)})")
        if len(tables) > 1:
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), alpha=0.2)
        drawn[label] = (steps, mean)
    ax.set(xlabel="optimizer step", ylabel=metric,
           title=title or f"validation {metric} against step (mean, band = min..max over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(plt, fig, path)
    return drawn


def plot_per_keypoint(rows: list[dict], path: Path, metric: str = "EPE", title: str = "") -> dict:
    """Grouped bars: mean over seeds of `metric`/<keypoint> per loss; returns {loss: {keypoint: value}}."""
    names = [k.split("/", 1)[1] for k in rows[0] if k.startswith(f"{metric}/")] if rows else []
    losses = list(dict.fromkeys(r["loss"] for r in rows))
    drawn = {loss: {n: float(np.nanmean([r[f"{metric}/{n}"] for r in rows if r["loss"] == loss]))
                    for n in names} for loss in losses}
    plt, fig, ax = _figure(max(6.4, 0.5 * len(names) + 2), 4.2)
    width = 0.8 / max(1, len(losses))
    for i, loss in enumerate(losses):
        ax.bar(np.arange(len(names)) + i * width, [drawn[loss][n] for n in names], width, label=loss)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel=f"{metric} (image px)" if metric == "EPE" else metric,
           title=title or f"per-keypoint {metric} (mean over seeds)")
    ax.legend(fontsize=7)
    _save(plt, fig, path)
    return drawn


def _save(plt, fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
