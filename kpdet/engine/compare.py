"""Loss comparison studies: build the study, train what is unfinished, report from the run folders.

`python tools/compare_losses.py CONFIG_OR_STUDY --losses "a,b(k=v)" [--seeds N] [key=value ...]`.
The parts live in kpdet/engine/study/ (spec, run, parallel, collect, stats, report, plots).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from omegaconf import DictConfig

from kpdet.config import load_config, save_config
from kpdet.engine.study.collect import collect
from kpdet.engine.study.parallel import run_all
from kpdet.engine.study.report import write_report
from kpdet.engine.study.spec import Study, StudyError, expand_seeds, is_study_file, load_study, parse_losses

SHOWN = ("AP", "AP50", "AR", "PCK@0.05", "PCK@0.1", "PCK@0.2", "EPE")


def build_study(path: str, losses: str | None = None, seeds: int | None = None, overrides=(),
                backend: str | None = None, workers: int | None = None, baseline: str | None = None) -> Study:
    """A study file, or a training config turned into a one-dataset study; command-line values win.

    `work_dir=...` among the overrides moves the study; the other overrides go to every run.
    """
    overrides = list(overrides)
    work_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("work_dir=")), None)
    run_overrides = [o for o in overrides if not o.startswith(("work_dir=", "seed="))]
    if is_study_file(path):
        study = load_study(path)
        for extra in study.datasets.values():  # fail now on a bad key, not later in a worker
            load_config(study.base, [*study.overrides, *extra, *run_overrides])
        first_seed = study.seeds[0]
    else:
        if not losses:
            raise StudyError(f"{path} is a training config: give the losses with --losses a,b,c")
        cfg = load_config(path, overrides)
        study = Study(base=str(path), work_dir=str(cfg.work_dir), losses=[], seeds=[cfg.seed])
        if cfg.data.mode == "bottom_up":  # points have no PCK, pose ranks by OKS AP: the config's own metric
            study.metric = cfg.eval.best_metric
        first_seed = cfg.seed
    study.overrides = [*study.overrides, *run_overrides]
    if losses:
        study.losses = parse_losses(losses)
    if seeds is not None:
        study.seeds = expand_seeds(seeds, first_seed)
    if work_dir is not None:
        study.work_dir = work_dir
    if baseline is not None:
        study.baseline = baseline
        if study.baseline_label() is None:
            raise StudyError(f"--baseline {baseline}: no such loss in the study; its losses: "
                             f"{', '.join(loss.label for loss in study.losses)}")
    if backend is not None or workers is not None:
        study.parallel = replace(study.parallel, backend=backend or study.parallel.backend,
                                 workers=workers or study.parallel.workers)
    return study


def run_study(study: Study, train: bool = True) -> list[dict]:
    """Train the unfinished runs (unless train=False), then write results.csv, results.md and plots."""
    if train:
        run_all(study.runs(), study.parallel, Path(study.work_dir) / "submitit")
    rows = collect(study)
    if not rows:
        raise StudyError(f"no finished runs under {study.work_dir} (run without --report first)")
    write_report(study, rows)
    _write_legacy(rows, Path(study.work_dir))
    return rows


def compare_losses(cfg: DictConfig, losses: list[str], seeds: int = 1) -> dict[str, dict[str, list[float]]]:
    """The former API: train `cfg` with each loss for seeds cfg.seed .. cfg.seed + seeds - 1.

    Returns {loss: {metric: [value per seed]}} (also work_dir/comparison.json).
    """
    root = Path(cfg.work_dir)
    root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, root / "base_config.yaml")
    study = Study(base=str(root / "base_config.yaml"), work_dir=str(root),
                  losses=parse_losses(",".join(losses)), seeds=expand_seeds(seeds, cfg.seed))
    return _grouped(run_study(study))


def _grouped(rows: list[dict]) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and key not in ("seed",):
                results.setdefault(row["loss"], {}).setdefault(key, []).append(value)
    return results


def _write_legacy(rows: list[dict], root: Path) -> None:
    """comparison.json ({loss: {metric: [per seed]}}) and comparison.md, as before studies existed."""
    results = _grouped(rows)
    (root / "comparison.json").write_text(json.dumps(results, indent=2))
    (root / "comparison.md").write_text(comparison_table(results))


def comparison_table(results: dict[str, dict[str, list[float]]]) -> str:
    """Markdown: one row per loss, mean ± sample std over seeds for each shown metric."""
    import numpy as np

    metrics = [m for m in SHOWN if any(m in r for r in results.values())]
    lines = ["| loss | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for loss, values in results.items():
        cells = []
        for m in metrics:
            v = values.get(m, [])
            cells.append("-" if not v else f"{v[0]:.3f}" if len(v) == 1 else
                         f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}")
        lines.append(f"| {loss} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
