"""One study run, in whatever process runs it: config from the RunSpec, resume, train, save predictions.

Fair by construction: the config differs between the losses of a seed only in `loss` (and in
the loss's own `overrides`, when a study gives it some, e.g. the ordinal head), so `fit` draws
the same initial weights (apart from the final bias prior of sigmoid losses, model.final_bias),
the same data order and augmentation ((seed, epoch) alone, runner._seed_epoch) and runs the
same step budget; the reported metrics are those of the last weights (metrics.json) for every loss.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from kpdet.config import load_config
from kpdet.engine.pretrain import synthetic_trunk
from kpdet.engine.study.spec import RunSpec, StudyError

PREDICTIONS = "predictions.npz"  # final-weights predictions on val: PCK at any threshold for the plots
RUN_INFO = "run_info.json"  # wall time, images/s, steps


def run_config(run: RunSpec) -> DictConfig:
    """The run's config: base file, overrides, then loss, seed, work_dir and resume=auto."""
    fixed = [f"seed={run.seed}", f"work_dir={run.work_dir}", "resume=auto"]
    cfg = load_config(run.base, [*run.overrides, *fixed])
    loss = {k: list(v) if isinstance(v, tuple) else v for k, v in run.loss.as_dict().items()}
    cfg.loss = OmegaConf.create(loss)
    return cfg


def is_finished(run: RunSpec) -> bool:
    """metrics.json is written last by fit: its presence means the training is done."""
    return (Path(run.work_dir) / "metrics.json").exists()


def execute(run: RunSpec, threads: int | None = None, requeues: int = 0, stop_signals=None) -> str:
    """Train `run` unless finished (an interrupted one resumes from last.pt); returns its work_dir.
    `requeues`: how often a scheduler requeued it (run_info.json); `stop_signals`: fit's (preempt.py)."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    from kpdet.engine.runner import fit

    cfg, work = run_config(run), Path(run.work_dir)
    if (work / "config.yaml").exists():
        check_same_config(cfg, work / "config.yaml")
    if not is_finished(run):
        print(f"[study] training {run.name} -> {work}", flush=True)
        tick = time.perf_counter()
        with GpuMonitor() as gpu:
            metrics = fit(cfg) if stop_signals is None else fit(cfg, stop_signals)
        _write_info(cfg, work, time.perf_counter() - tick, requeues, gpu.mean())
        log_hparams(run, metrics)
    if not (work / PREDICTIONS).exists():
        save_predictions(cfg, work)  # (none for multi-instance pose: rerun each time, a no-op)
    return str(work)


def check_same_config(cfg: DictConfig, saved_path: Path) -> None:
    """A run folder trained under another config (say, another budget) is not silently reused.
    model.pretrained=synthetic[:N] is compared as the trunk file it stands for (fit saves that)."""
    planned = _flat(OmegaConf.to_container(cfg, resolve=True))
    trunk = synthetic_trunk(cfg)
    if trunk is not None:
        planned["model.pretrained"] = str(trunk)
    saved = _flat(OmegaConf.to_container(OmegaConf.load(saved_path), resolve=True))
    differ = sorted(k for k in planned.keys() | saved.keys() if planned.get(k) != saved.get(k))
    if differ:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {planned.get(k)!r}" for k in differ[:5])
        raise StudyError(f"{saved_path} was written with another config ({shown}); delete "
                         f"{saved_path.parent} to retrain it, or give the study another work_dir")


def _flat(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


class GpuMonitor:
    """Samples torch.cuda.utilization() (percent of time a kernel ran on the card, over the driver's
    last sample period; NVML through nvidia-ml-py) every `period` s while the block runs. It is the
    card's, not this process's: runs packed onto one GPU each see the total. `mean()` is None
    without CUDA or NVML."""

    def __init__(self, period: float = 0.5):
        self.period, self.samples = period, []
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self) -> GpuMonitor:
        if gpu_utilization() is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.period):
            value = gpu_utilization()
            if value is not None:
                self.samples.append(value)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def gpu_utilization() -> float | None:
    """Percent utilisation of the current CUDA device, or None (no CUDA, or no NVML)."""
    if not torch.cuda.is_available():
        return None
    try:
        return float(torch.cuda.utilization())
    except Exception:  # noqa: BLE001  (NVML missing or refusing: ModuleNotFoundError, RuntimeError, ...)
        return None


def _write_info(cfg: DictConfig, work: Path, wall: float, requeues: int = 0,
                gpu_util: float | None = None) -> None:
    """Wall time of the run (validation included): this session's `wall`, or for a resumed run the
    sum of its sessions that last.pt counts (TrainState.seconds) when longer; training images/s; how
    often the run was requeued (submitit, after preemption or a time limit); the mean GPU utilisation
    (percent; None without CUDA/NVML)."""
    state = torch.load(work / "last.pt", map_location="cpu", weights_only=True)["state"]
    steps, wall = state["step"], max(wall, state.get("seconds", 0.0))
    images = steps * cfg.train.batch_size * cfg.train.accumulate
    info = {"wall_s": wall, "steps": steps, "images": images, "images_per_s": images / max(wall, 1e-9),
            "threads": torch.get_num_threads(), "device": str(cfg.device), "requeues": requeues,
            "gpu_util": gpu_util}
    (work / RUN_INFO).write_text(json.dumps(info, indent=2))


def log_hparams(run: RunSpec, metrics: dict[str, float]) -> None:
    """TensorBoard HParams entry: loss, its parameters, seed, dataset -> final summary metrics."""
    from kpdet.engine.logger import TensorBoardLogger

    params = {"loss": run.loss.type, "dataset": run.dataset, "seed": run.seed, "label": run.loss.label}
    params.update({f"loss.{k}": v if isinstance(v, (int, float, str, bool)) else str(v)
                   for k, v in run.loss.params})
    if run.loss.overrides:
        params["overrides"] = " ".join(run.loss.overrides)
    logger = TensorBoardLogger(Path(run.work_dir) / "tb")
    logger.hparams(params, {f"hparam/{k}": v for k, v in metrics.items() if "/" not in k})
    logger.close()


@torch.no_grad()
def save_predictions(cfg: DictConfig, work: Path) -> None:
    """Predict the val split with last.pt's evaluated weights; keypoints, gt [N, K, 3], bbox in image px
    (points: flat point arrays). Multi-instance pose saves none: its instances are not the crops
    the PCK-curve plot reads, and its metrics (OKS AP) are in metrics.json."""
    from kpdet.engine import builders
    from kpdet.engine.checkpoint import eval_weights, load_checkpoint
    from kpdet.engine.evaluate import predict_dataset
    from kpdet.predict import make_predictor

    kind = builders.pipeline_kind(cfg)
    if kind == "pose":
        return
    device = builders.resolve_device(cfg.device)
    dataset = builders.build_split(cfg, "val", train=False)
    points = kind == "points"
    loss_fn = builders.build_loss_from_cfg(cfg)
    model = builders.build_model_from_cfg(cfg, dataset.spec.num_keypoints, loss_fn.activation,
                                          pretrained=False)  # the weights are last.pt's
    model.load_state_dict(eval_weights(load_checkpoint(work / "last.pt")))
    loader = builders.build_loader(dataset, cfg.eval.batch_size, 0, False, cfg.seed)
    flip_index = dataset.spec.flip_index if cfg.eval.flip_test else None
    predictor = make_predictor(model.to(device), builders.build_codec_from_cfg(cfg), loss_fn.activation,
                               flip_index)
    if points:
        predictions = _point_arrays(cfg, predictor, loader, device)
    else:
        predictions = predict_dataset(predictor, loader, device)
    np.savez_compressed(work / PREDICTIONS, names=np.array(dataset.spec.names), **predictions)


def _point_arrays(cfg: DictConfig, predictor, loader, device) -> dict[str, np.ndarray]:
    """Point objects as flat arrays: predicted points [P, 2], scores, labels, image (index of the
    image in val order), and the ground truth gt_points [G, 2], gt_labels, gt_image."""
    from kpdet.engine.points_eval import predict_points

    bu = cfg.data.bottom_up
    predictions, targets = predict_points(predictor, loader, device, bu.max_peaks, bu.peak_threshold,
                                          bu.nms_kernel)
    out = {}
    for prefix, items in (("", predictions), ("gt_", targets)):
        out[f"{prefix}points"] = np.concatenate([i["points"].reshape(-1, 2) for i in items]
                                                or [np.zeros((0, 2))])
        out[f"{prefix}labels"] = np.concatenate([i["labels"] for i in items] or [np.zeros(0, int)])
        out[f"{prefix}image"] = np.concatenate([np.full(len(i["labels"]), n) for n, i in enumerate(items)]
                                               or [np.zeros(0, int)])
    out["scores"] = np.concatenate([i["scores"] for i in predictions] or [np.zeros(0)])
    return out
