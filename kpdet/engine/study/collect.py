"""Read finished runs back from their folders: one flat row per run, whatever process ran it."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from kpdet.engine.study.run import PREDICTIONS, RUN_INFO, is_finished
from kpdet.engine.study.spec import RunSpec, Study
from kpdet.engine.study.stats import lower_is_better, steps_to_target


def read_history(work_dir: str | Path) -> list[dict]:
    """history.jsonl ({"step": N, **metrics} per validation); the last entry wins for a repeated step."""
    path = Path(work_dir) / "history.jsonl"
    if not path.exists():
        return []
    by_step = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            by_step[entry["step"]] = entry
    return [by_step[s] for s in sorted(by_step)]


def target_column(metric: str, target: float) -> str:
    return f"steps_to_{metric}{'<=' if lower_is_better(metric) else '>='}{target:g}"


def run_row(run: RunSpec, targets: dict[str, float]) -> dict:
    """dataset, loss label/type/params/overrides, seed, every metric, steps to each target, time, images/s."""
    work = Path(run.work_dir)
    row = {"dataset": run.dataset, "loss": run.loss.label, "loss_type": run.loss.type,
           "params": json.dumps(dict(run.loss.params)), "overrides": " ".join(run.loss.overrides),
           "seed": run.seed}
    row.update(json.loads((work / "metrics.json").read_text()))
    history = read_history(work)
    for metric, target in targets.items():
        row[target_column(metric, target)] = steps_to_target(history, metric, target)
    info = json.loads((work / RUN_INFO).read_text()) if (work / RUN_INFO).exists() else {}
    row.update({k: info.get(k, math.nan) for k in ("steps", "wall_s", "images_per_s")})
    row["requeues"] = info.get("requeues", 0)  # submitit requeues after preemption or a time limit
    row["work_dir"] = str(work)
    return row


def collect(study: Study) -> list[dict]:
    """Rows of the study's finished runs (unfinished ones are left out)."""
    return [run_row(run, study.targets) for run in study.runs() if is_finished(run)]


def load_predictions(work_dir: str | Path) -> dict[str, np.ndarray] | None:
    path = Path(work_dir) / PREDICTIONS
    if not path.exists():
        return None
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
