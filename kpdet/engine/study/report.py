"""results.csv (one row per run), results.md (per dataset: ranked statistics) and the PNG plots."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from kpdet.engine.study import plots
from kpdet.engine.study.collect import load_predictions, read_history, target_column
from kpdet.engine.study.spec import Study
from kpdet.engine.study.stats import lower_is_better, paired_difference, summarize

FIRST = ("dataset", "loss", "loss_type", "params", "overrides", "seed")
SUMMARY = ("AP", "AR", "PCK@0.05", "PCK@0.1", "PCK@0.2", "EPE", "RMSE",
           "F1@3", "AP@3", "F1@6", "AP@6", "count_MAE")  # the last five: point objects


def write_csv(rows: list[dict], path: Path) -> None:
    """One row per run; columns: identity, then summary metrics, per-keypoint metrics, timing."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    rest = [k for k in keys if k not in FIRST]
    timing = ("steps", "wall", "images", "gpu")
    columns = list(FIRST) + sorted(rest, key=lambda k: ("/" in k, k.startswith(timing), k))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def by_loss(rows: list[dict], metric: str) -> dict[str, dict[int, float]]:
    """{loss label: {seed: value}} in the order of first appearance."""
    out: dict[str, dict[int, float]] = {}
    for row in rows:
        out.setdefault(row["loss"], {})[row["seed"]] = float(row.get(metric, math.nan))
    return out


def ranking_table(rows: list[dict], metric: str, baseline: str | None) -> str:
    """Per loss: n, mean ± std, 95 % CI; difference to the baseline paired by seed with both tests."""
    values = by_loss(rows, metric)
    summaries = {loss: summarize(v.values()) for loss, v in values.items()}
    sign = 1 if lower_is_better(metric) else -1
    order = sorted(values, key=lambda loss: (math.isnan(summaries[loss].mean), sign * summaries[loss].mean))
    base = f" vs {baseline}" if baseline else ""
    lines = [f"| rank | loss | n | {metric} mean ± std | 95 % CI | Δ{base} (95 % CI) | p paired t "
             "| p Wilcoxon |",
             "|---:|---|---:|---|---|---|---:|---:|"]
    for rank, loss in enumerate(order, 1):
        s = summaries[loss]
        cells = [str(rank), loss, str(s.n), _pm(s.mean, s.std), _ci(s.low, s.high)]
        if baseline is None or loss == baseline or baseline not in values:
            cells += ["-", "-", "-"]
        else:
            p = paired_difference(values[loss], values[baseline])
            cells += [f"{_num(p.diff.mean, signed=True)} {_ci(p.diff.low, p.diff.high)}", _p(p.p_t),
                      _p(p.p_wilcoxon)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary_table(rows: list[dict], metrics=SUMMARY) -> str:
    """Mean ± std over seeds of the summary metrics, one row per loss."""
    shown = [m for m in metrics if any(m in r for r in rows)]
    lines = ["| loss | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for loss in dict.fromkeys(r["loss"] for r in rows):
        cells = [_pm(s.mean, s.std) for s in (summarize(by_loss(rows, m)[loss].values()) for m in shown)]
        lines.append(f"| {loss} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def speed_table(rows: list[dict], targets: dict[str, float]) -> str:
    """Steps to each target (mean over the seeds that reached it, and how many did), wall time, images/s."""
    columns = [target_column(m, t) for m, t in targets.items()]
    head = [c.removeprefix("steps_to_") for c in columns]
    lines = ["| loss | " + " | ".join([f"steps to {h}" for h in head] + ["wall s", "images/s"]) + " |",
             "|---" * (len(columns) + 3) + "|"]
    for loss, group in _groups(rows).items():
        cells = []
        for column in columns:
            reached = [r[column] for r in group if not math.isnan(r.get(column, math.nan))]
            cells.append(f"{sum(reached) / len(reached):.0f} ({len(reached)}/{len(group)})" if reached
                         else f"never (0/{len(group)})")
        for key in ("wall_s", "images_per_s"):
            cells.append(_num(summarize([r.get(key, math.nan) for r in group]).mean, digits=1))
        lines.append(f"| {loss} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def runs_table(rows: list[dict]) -> str:
    """One line per run: wall time, training images/s and the mean GPU utilisation while it ran
    (the card's, shared by runs packed onto it; blank without CUDA/NVML)."""
    lines = ["| loss | seed | wall s | images/s | GPU util % |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        util = row.get("gpu_util", math.nan)
        cells = [row["loss"], str(row["seed"]), _num(row.get("wall_s", math.nan), 1),
                 _num(row.get("images_per_s", math.nan), 1), "" if math.isnan(util) else f"{util:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def method_note(study: Study, rows: list[dict]) -> str:
    """What the table shows and which tests gave the p values."""
    seeds = sorted({r["seed"] for r in rows})
    direction = "lower" if lower_is_better(study.metric) else "higher"
    compared = len({r["loss"] for r in rows}) - 1
    return (f"Ranked by {study.metric} ({direction} is better); seeds {seeds}; every run reports its last "
            f"checkpoint. Δ = loss - {study.baseline_label() or 'baseline'} paired by seed, with its 95 % CI "
            "(t distribution); p paired t = scipy.stats.ttest_rel, p Wilcoxon = scipy.stats.wilcoxon "
            f"(signed-rank, exact, two-sided; with {len(seeds)} seeds its smallest possible p is "
            f"{2 / 2 ** len(seeds):.3g}). p values are not corrected for the {compared} comparisons "
            f"(Bonferroni: multiply by {compared}).\n")


def dataset_section(study: Study, dataset: str, rows: list[dict], plot_files: list[str] = ()) -> str:
    baseline = study.baseline_label()
    parts = [f"## {dataset}\n", method_note(study, rows),
             ranking_table(rows, study.metric, baseline), "Summary metrics (mean ± std over seeds):\n",
             summary_table(rows)]
    if study.targets or any("wall_s" in r for r in rows):
        parts += ["Time to accuracy (first validation step reaching the target; seeds that reached it) "
                  "and cost:\n", speed_table(rows, study.targets), "Per run:\n", runs_table(rows)]
    requeued = [f"{r['loss']} seed {r['seed']} ({r['requeues']}x)" for r in rows if r.get("requeues", 0) > 0]
    if requeued:
        parts.append(f"Requeued after preemption or time limit (resumed from their step checkpoints): "
                     f"{', '.join(requeued)}.\n")
    if plot_files:
        parts.append(f"Plots: {', '.join(f'`{name}`' for name in plot_files)}.\n")
    return "\n".join(parts)


def write_report(study: Study, rows: list[dict]) -> dict:
    """Write results.csv, results.md and the plots under study.work_dir; returns what the plots drew."""
    root = Path(study.work_dir)
    root.mkdir(parents=True, exist_ok=True)
    write_csv(rows, root / "results.csv")
    sections, drawn = [f"# Loss study: {len(rows)} finished runs\n"], {}
    for dataset, group in _groups(rows, "dataset").items():
        drawn[dataset] = write_plots(study, dataset, group, root)
        files = [plot_file(dataset, kind, study.metric) for kind in drawn[dataset]]
        sections.append(dataset_section(study, dataset, group, files))
    (root / "results.md").write_text("\n".join(sections))
    return drawn


_PLOT_FILES = {"pck": "pck_curve.png", "steps": "{metric}_vs_step.png", "keypoints": "per_keypoint_epe.png"}


def plot_file(dataset: str, kind: str, metric: str) -> str:
    """The file name of one of a dataset's plots (a key of _PLOT_FILES), e.g. openfield_RMSE_vs_step.png."""
    return f"{dataset}_{_PLOT_FILES[kind].format(metric=_safe(metric))}"


def write_plots(study: Study, dataset: str, rows: list[dict], root: Path) -> dict:
    """The plots that have data: {"pck" (PCK curves; runs with saved per-keypoint predictions), "steps",
    "keypoints" (runs with per-keypoint EPE): what each drew}."""
    groups = _groups(rows)
    curves = {loss: [c for c in (_curve(r) for r in g) if c is not None] for loss, g in groups.items()}
    histories = {loss: [read_history(r["work_dir"]) for r in g] for loss, g in groups.items()}
    drawn = {}

    def path(kind: str) -> Path:
        return root / plot_file(dataset, kind, study.metric)

    if any(curves.values()):  # point objects and multi-instance pose save none
        drawn["pck"] = plots.plot_pck_curves({k: v for k, v in curves.items() if v}, path("pck"),
                                             title=f"{dataset}: PCK against threshold")
    drawn["steps"] = plots.plot_metric_vs_step(histories, study.metric, path("steps"),
                                               title=f"{dataset}: validation {study.metric} against step")
    if any(key.startswith("EPE/") for row in rows for key in row):
        drawn["keypoints"] = plots.plot_per_keypoint(rows, path("keypoints"),
                                                     title=f"{dataset}: per-keypoint EPE (mean over seeds)")
    return drawn


def _curve(row: dict):
    predictions = load_predictions(row["work_dir"])
    if predictions is None or "gt" not in predictions:  # point objects have no PCK curve
        return None
    return plots.pck_curve(predictions)


def _groups(rows: list[dict], key: str = "loss") -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row[key], []).append(row)
    return out


def _safe(metric: str) -> str:
    return metric.replace("@", "_at_").replace("/", "_")  # F1@3 -> F1_at_3, not F13


def _num(value: float, digits: int = 3, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pm(mean: float, std: float) -> str:
    return _num(mean) if math.isnan(std) else f"{_num(mean)} ± {_num(std)}"


def _ci(low: float, high: float) -> str:
    return "-" if math.isnan(low) else f"[{_num(low)}, {_num(high)}]"


def _p(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"
