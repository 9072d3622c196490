"""Loss comparison studies: the same config trained once per (loss, seed), metrics side by side."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from kpdet.engine.runner import fit

SHOWN = ("AP", "AP50", "AR", "PCK@0.05", "PCK@0.1", "PCK@0.2", "EPE")


def compare_losses(cfg: DictConfig, losses: list[str], seeds: int = 1) -> dict[str, dict[str, list[float]]]:
    """Train `cfg` with each loss (by name, default parameters) and seeds cfg.seed .. cfg.seed+seeds-1.

    Runs go to work_dir/<loss>/seed<s>; returns {loss: {metric: [value per seed]}} and writes it
    to work_dir/comparison.json plus a Markdown table to work_dir/comparison.md.
    """
    root = Path(cfg.work_dir)
    results: dict[str, dict[str, list[float]]] = {}
    for loss in losses:
        for offset in range(seeds):
            run = cfg.copy()
            seed = cfg.seed + offset
            run.loss = OmegaConf.create({"type": loss})
            run.seed, run.work_dir = seed, str(root / loss / f"seed{seed}")
            for key, value in fit(run).items():
                results.setdefault(loss, {}).setdefault(key, []).append(value)
    root.mkdir(parents=True, exist_ok=True)
    (root / "comparison.json").write_text(json.dumps(results, indent=2))
    (root / "comparison.md").write_text(comparison_table(results))
    return results


def comparison_table(results: dict[str, dict[str, list[float]]]) -> str:
    """Markdown: one row per loss, mean ± sample std over seeds for each shown metric."""
    metrics = [m for m in SHOWN if any(m in r for r in results.values())]
    lines = ["| loss | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for loss, values in results.items():
        cells = [_mean_std(values.get(m, [])) for m in metrics]
        lines.append(f"| {loss} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
