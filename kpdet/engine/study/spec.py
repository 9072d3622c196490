"""A loss study as data: base config, datasets (override lists), losses, seeds, budget, targets.

A study file (configs/studies/*.yaml) looks like

    base: configs/synthetic/mse.yaml      # any training config
    work_dir: work_dirs/studies/name       # runs go to work_dir/<dataset>/<loss label>/seed<s>
    overrides: [train.epochs=3]            # the budget: applied to every run
    datasets: {synthetic: []}              # name -> overrides (data.* paths)
    losses: [{type: mse}, {type: dual_focal, alpha: 2},
             {type: squared_emd, label: emd_ordinal,                # a loss that needs other
              overrides: [model.head=ordinal_xy, codec.type=ordinal_xy]}]  # model/codec keys
    seeds: 3                               # a count from `seed` (default 0), or a list
    baseline: mse                          # loss label the others are paired against
    metric: PCK@0.1                        # the metric the report ranks by
    targets: {PCK@0.1: 0.5, EPE: 5.0}      # time to accuracy: first step reaching each
    parallel: {backend: serial, workers: 1}

A plain training config is a study of one dataset ("default") whose losses come
from the command line (`--losses "daf,mse,dfl(alpha=2)"`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kpdet.config import find_config
from kpdet.errors import UserError
from kpdet.losses import LOSSES

STUDY_KEYS = {"base", "work_dir", "overrides", "datasets", "losses", "seeds", "seed", "baseline", "metric",
              "targets", "parallel"}
PARALLEL_KEYS = {"backend", "workers", "threads", "cluster", "slurm"}
BACKENDS = ("serial", "processes", "submitit")


class StudyError(UserError, ValueError):
    """A study file or --losses string that does not make sense; the message names the field."""


@dataclass(frozen=True)
class LossSpec:
    """One loss of a study: its registry name (or alias), parameters, and the config overrides it needs.

    `overrides` are applied to this loss's runs only, after the study's and the dataset's (for a loss
    that needs another head or codec, or a model prior of its own); everything else stays shared.
    """

    type: str
    params: tuple[tuple[str, object], ...] = ()
    overrides: tuple[str, ...] = ()
    name: str | None = None  # the study file's `label`, when given

    @property
    def label(self) -> str:
        """Shown in tables: the given label, else "mse", "dfl(alpha=2)", "daf[model.final_bias=-4.6]"."""
        if self.name:
            return self.name
        text = self.type
        if self.params:
            text += "(" + ",".join(f"{k}={_show(v)}" for k, v in self.params) + ")"
        if self.overrides:
            text += "[" + ",".join(self.overrides) + "]"
        return text

    @property
    def folder(self) -> str:
        """File-system safe label: "dfl_alpha=2"."""
        return re.sub(r"[^A-Za-z0-9=.+-]+", "_", self.label).strip("_")

    def as_dict(self) -> dict:
        """The config's `loss` node."""
        return {"type": self.type, **dict(self.params)}

    def matches(self, name: str) -> bool:
        """True when `name` is this loss's label, or its type (any alias) and this loss has nothing else."""
        if name == self.label:
            return True
        same = name in LOSSES and LOSSES.canonical(name) == LOSSES.canonical(self.type)
        return same and not self.params and not self.overrides and not self.name


@dataclass(frozen=True)
class RunSpec:
    """One training run of a study: everything needed to rebuild its config in any process."""

    base: str
    overrides: tuple[str, ...]  # study budget and command line, then the dataset's, then the loss's
    loss: LossSpec
    dataset: str
    seed: int
    work_dir: str

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.loss.label}/seed{self.seed}"


@dataclass
class Parallel:
    backend: str = "serial"  # serial | processes | submitit
    workers: int | None = None  # concurrent runs; None = number of GPUs, else 1
    threads: int | None = None  # torch threads per run; None = CPU cores // workers
    cluster: str | None = None  # submitit: None = auto (SLURM when present), "local", "debug"
    slurm: dict = field(default_factory=dict)  # submitit executor parameters (timeout_min, partition, ...)


@dataclass
class Study:
    base: str
    work_dir: str
    losses: list[LossSpec]
    seeds: list[int]
    datasets: dict[str, list[str]] = field(default_factory=lambda: {"default": []})
    overrides: list[str] = field(default_factory=list)
    baseline: str = "mse"
    metric: str = "PCK@0.1"
    targets: dict[str, float] = field(default_factory=dict)
    parallel: Parallel = field(default_factory=Parallel)

    def runs(self) -> list[RunSpec]:
        """Seed-major order: an interrupted study has every loss at its first seeds."""
        root = Path(self.work_dir)
        return [RunSpec(self.base, (*self.overrides, *extra, *loss.overrides), loss, name, seed,
                        str(root / name / loss.folder / f"seed{seed}"))
                for name, extra in self.datasets.items() for seed in self.seeds for loss in self.losses]

    def baseline_label(self) -> str | None:
        """Label of the loss that matches `baseline`, None when the study has no such loss."""
        return next((loss.label for loss in self.losses if loss.matches(self.baseline)), None)


def parse_losses(text: str) -> list[LossSpec]:
    """`"daf,mse,dfl(alpha=2, gamma=3)"` -> LossSpecs; values are typed as YAML (2 -> int, 1e-3 -> float)."""
    return [_parse_one(item, text) for item in _split_top(text, text) if item]


def _split_top(text: str, whole: str) -> list[str]:
    """Split at commas outside brackets: "a,b(x=1,y=[1,2])" -> ["a", "b(x=1,y=[1,2])"]."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text + ","):
        depth += 1 if char in "([{" else -1 if char in ")]}" else 0
        if depth < 0:
            raise StudyError(f"--losses {whole!r}: unbalanced {char!r}")
        if char == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    if depth:
        raise StudyError(f"--losses {whole!r}: unclosed bracket")
    return items


def _parse_one(item: str, text: str) -> LossSpec:
    match = re.fullmatch(r"([A-Za-z_][\w]*)\s*(?:\((.*)\))?", item)
    if match is None:
        raise StudyError(f"--losses {text!r}: cannot read {item!r} (expected name or name(key=value, ...))")
    params = {}
    for pair in filter(None, _split_top(match.group(2) or "", text)):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StudyError(f"--losses {text!r}: parameter {pair!r} of {match.group(1)} is not key=value")
        params[key.strip()] = yaml.safe_load(value.strip())
    return make_loss({"type": match.group(1), **params}, f"--losses {text!r}")


def make_loss(entry, where: str) -> LossSpec:
    """A loss from a name or a {type, label?, overrides?, **params} dict; `type` must be a registered loss."""
    entry = {"type": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, dict) else entry
    if not isinstance(entry, dict) or "type" not in entry:
        raise StudyError(f"{where}: a loss must be a name or a dict with 'type', got {entry!r}")
    name = entry.pop("type")
    if name not in LOSSES:
        raise StudyError(f"{where}: unknown loss {name!r}; known: {', '.join(sorted(LOSSES.names()))}")
    overrides = tuple(_strings(entry.pop("overrides", None), f"{where}.overrides"))
    label = entry.pop("label", None)
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise StudyError(f"{where}.label must be a non-empty string, got {label!r}")
    params = tuple(sorted((k, _freeze(v)) for k, v in entry.items()))
    return LossSpec(name, params, overrides, label)


def is_study_file(path: str | Path) -> bool:
    """A study file has `base` or `losses` at top level; a training config has neither."""
    data = yaml.safe_load(find_config(path).read_text()) or {}
    return isinstance(data, dict) and ("base" in data or "losses" in data)


def load_study(path: str | Path) -> Study:
    """Read and check a study file (a path or a shipped name); `base` is relative to the current
    directory (the repo root), or a shipped config name."""
    data = yaml.safe_load(find_config(path).read_text()) or {}
    unknown = set(data) - STUDY_KEYS
    if unknown:
        raise StudyError(f"{path}: unknown study keys {sorted(unknown)}; known: {sorted(STUDY_KEYS)}")
    for key in ("base", "losses"):
        if key not in data:
            raise StudyError(f"{path}: missing '{key}'")
    study = Study(
        base=str(data["base"]), work_dir=str(data.get("work_dir", f"work_dirs/studies/{Path(path).stem}")),
        losses=[make_loss(e, f"{path}: losses[{i}]") for i, e in enumerate(data["losses"])],
        seeds=expand_seeds(data.get("seeds", 1), data.get("seed", 0)),
        datasets=_datasets(data.get("datasets"), path), overrides=_strings(data.get("overrides"), path),
        baseline=str(data.get("baseline", "mse")), metric=str(data.get("metric", "PCK@0.1")),
        targets={str(k): float(v) for k, v in (data.get("targets") or {}).items()},
        parallel=make_parallel(data.get("parallel") or {}, path))
    check_study(study, path)
    return study


def expand_seeds(seeds, first: int = 0) -> list[int]:
    """An int n -> [first, ..., first + n - 1]; a list is kept."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise StudyError(f"seeds must be >= 1, got {seeds}")
        return list(range(first, first + seeds))
    return [int(s) for s in seeds]


def make_parallel(data: dict, where) -> Parallel:
    unknown = set(data) - PARALLEL_KEYS
    if unknown:
        raise StudyError(f"{where}: unknown parallel keys {sorted(unknown)}; known: {sorted(PARALLEL_KEYS)}")
    parallel = Parallel(**data)
    if parallel.backend not in BACKENDS:
        raise StudyError(f"{where}: parallel.backend={parallel.backend!r} is not one of "
                         f"{', '.join(BACKENDS)}")
    return parallel


def check_study(study: Study, where) -> None:
    labels = [loss.label for loss in study.losses]
    if len(set(labels)) != len(labels):
        raise StudyError(f"{where}: a loss is listed twice: {labels}")
    if len(set(study.seeds)) != len(study.seeds):
        raise StudyError(f"{where}: a seed is listed twice: {study.seeds}")
    if not study.losses:
        raise StudyError(f"{where}: no losses")


def _datasets(data, path) -> dict[str, list[str]]:
    if data is None:
        return {"default": []}
    if not isinstance(data, dict) or not data:
        raise StudyError(f"{path}: datasets must be a mapping name -> list of key=value overrides")
    return {str(name): _strings(items, f"{path}: datasets.{name}") for name, items in data.items()}


def _strings(items, where) -> list[str]:
    items = items or []
    if not isinstance(items, list) or any(not isinstance(s, str) or "=" not in s for s in items):
        raise StudyError(f"{where}: overrides must be a list of 'key=value' strings, got {items!r}")
    return list(items)


def _freeze(value):
    return tuple(value) if isinstance(value, list) else value


def _show(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
