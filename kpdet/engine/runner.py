"""The run: build from config, resume, train with periodic validation, checkpoint, report."""
from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from kpdet.build import load_weights, pose_decoding, spec_to_checkpoint
from kpdet.config import save_config
from kpdet.engine import attribute_run, builders, distributed, preempt
from kpdet.engine.bottom_up_panels import log_bottom_up_panels
from kpdet.engine.checkpoint import (
    BackgroundWriter,
    CheckpointError,
    eval_weights,
    find_resumable,
    load_checkpoint,
    rng_state,
    save_atomic,
    set_rng_state,
)
from kpdet.engine.evaluate import evaluate, summary_table
from kpdet.engine.logger import TensorBoardLogger
from kpdet.engine.panels import log_panels
from kpdet.engine.points_eval import evaluate_points
from kpdet.engine.pose_eval import evaluate_pose
from kpdet.engine.pretrain import resolve_pretrained
from kpdet.engine.train import StepOptions, train_one_epoch
from kpdet.predict import PosePredictor, make_predictor


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    batch: int = 0  # batches of epoch `epoch` already trained (a mid-epoch checkpoint after a signal)
    partial: dict | None = None  # train_one_epoch's running stats of those batches
    best: float = float("-inf")  # best value of eval.best_metric
    skipped_nonfinite: int = 0  # steps skipped with train.skip_nonfinite
    last_metrics: dict | None = None
    seconds: float = 0.0  # wall time of the sessions before this one (a resumed run's sessions add up)

    def __post_init__(self):
        self._session_start = time.perf_counter()  # not a field: not saved

    def elapsed(self) -> float:
        """Wall seconds of the run so far: earlier sessions (from the checkpoint) plus this one."""
        return self.seconds + time.perf_counter() - self._session_start


@dataclass
class Components:
    """Everything a training run is made of, built from the config."""

    device: torch.device
    rank: int
    world_size: int
    train_set: object
    val_set: object
    train_loader: object
    val_loader: object
    loss_fn: torch.nn.Module
    codec: object
    model: torch.nn.Module  # what the step calls: maybe DDP- or compile-wrapped
    ema: object  # torch.optim.swa_utils.AveragedModel or None
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler

    @property
    def eval_model(self) -> torch.nn.Module:
        """EMA weights when kept, else the bare model."""
        return self.ema.module if self.ema is not None else distributed.unwrap(self.model)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_components(cfg: DictConfig) -> Components:
    device = builders.resolve_device(cfg.device)
    rank, world = distributed.init_distributed(device.type)
    device = distributed.local_device(device)
    if distributed.is_main():
        builders.prepare_data(cfg)
    distributed.barrier()
    codec = builders.build_codec_from_cfg(cfg)
    loss_fn = builders.build_loss_from_cfg(cfg).to(device)
    on_device = builders.device_targets(cfg, device)
    train_set = builders.build_split(cfg, "train", train=True, codec=None if on_device else codec)
    val_set = builders.build_split(cfg, "val", train=False)
    builders.check_split_sizes(cfg, train_set, val_set, world, verbose=distributed.is_main())  # every rank
    model = builders.build_model_from_cfg(cfg, train_set.spec.num_keypoints, loss_fn.activation)
    model, ema = builders.prepare_model(cfg, model, device, world)
    workers, seed = cfg.data.num_workers, cfg.seed
    train_loader = builders.build_loader(train_set, cfg.train.batch_size, workers, True, seed, world, rank,
                                         cfg.data.persistent_workers)
    val_loader = builders.build_loader(val_set, cfg.eval.batch_size, workers, False, seed, world, rank,
                                       cfg.data.persistent_workers)
    batches = min(len(train_loader), cfg.train.max_iters_per_epoch or len(train_loader))
    optimizer = builders.build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp == "fp16" and device.type == "cuda")
    scheduler = builders.build_scheduler(cfg, optimizer, -(-batches // cfg.train.accumulate))
    return Components(device, rank, world, train_set, val_set, train_loader, val_loader, loss_fn, codec,
                      model, ema, optimizer, scheduler, scaler)


def step_options(cfg: DictConfig) -> StepOptions:
    t = cfg.train
    return StepOptions(t.amp, t.grad_clip, t.accumulate, t.skip_nonfinite, t.channels_last,
                       t.max_iters_per_epoch, t.log_interval)


def fit(cfg: DictConfig, stop_signals=preempt.STOP_SIGNALS) -> dict[str, float]:
    """Train per `cfg`; writes config.yaml, last.pt, best.pt, metrics.json and TensorBoard files.

    On one of `stop_signals` (preempt.py) the current optimizer step finishes, last.pt is written
    at that step (mid-epoch position and RNG included) and preempt.Interrupted is raised (exit status
    75); resume=auto continues exactly there."""
    cfg = resolve_pretrained(cfg)  # model.pretrained=synthetic[:N] -> the cached trunk (built if missing)
    work_dir = Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    c = build_components(cfg)
    main = distributed.is_main()
    state, rng = _resume(cfg, work_dir, c)
    if main:
        save_config(cfg, work_dir / "config.yaml")
        if state.step == 0:
            (work_dir / "history.jsonl").unlink(missing_ok=True)  # a fresh run starts a fresh curve
        else:
            _trim_history(work_dir / "history.jsonl", state.step)
    logger = TensorBoardLogger(work_dir / "tb", enabled=main)
    flip_index = c.val_set.spec.flip_index if cfg.eval.flip_test else None
    predictor = make_predictor(c.eval_model, c.codec, c.loss_fn.activation, flip_index)
    validate = _Validations(lambda step, index: _validate(cfg, predictor, c, logger, step, index))
    writer = BackgroundWriter()  # last.pt is written while the next epoch trains
    try:
        with preempt.StopRequest(stop_signals) as stop:
            for epoch in range(state.epoch, cfg.train.epochs):
                _train_epoch(cfg, c, state, epoch, rng, logger, validate, stop, writer)
        metrics = state.last_metrics or validate(state.step)
    finally:
        writer.wait()  # metrics.json (a finished run) only after the last write
        logger.close()
    if main:
        (work_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _train_epoch(cfg, c: Components, state: TrainState, epoch: int, rng, logger, validate, stop,
                 writer: BackgroundWriter) -> None:
    """One epoch (or its rest, after a mid-epoch resume), then validation and last.pt when due (by
    `writer`, in the background); raises preempt.Interrupted after writing last.pt when `stop` was
    signalled."""
    main, work_dir = distributed.is_main(), Path(cfg.work_dir)
    _seed_epoch(cfg.seed, epoch, c.train_loader, skip=state.batch * cfg.train.batch_size)
    if state.batch:  # mid-epoch resume: the RNG as it was after the interrupted step
        set_rng_state(rng)
    dump = lambda step, batch, loss: _dump_nonfinite(work_dir, c, step, batch, loss)
    state.step, stats = train_one_epoch(
        c.model, c.loss_fn, c.codec, c.train_loader, c.optimizer, c.scheduler, c.scaler, c.device,
        epoch, state.step, step_options(cfg), c.ema, logger.scalars, dump, progress=main,
        after_step=_every_steps(cfg, c, validate), start=state.batch, stats=state.partial,
        stop=stop.requested)
    if stats["stopped_at"] is not None:
        state.batch = stats["stopped_at"]
        state.partial = {k: stats[k] for k in ("loss_sum", "batches", "skipped_nonfinite")}
        _stop(cfg, c, state, stop.signum, writer)
    attribute_run.end_epoch(c.loss_fn, c.val_set, logger, state.step)
    state.epoch, state.batch, state.partial = epoch + 1, 0, None
    state.skipped_nonfinite += stats["skipped_nonfinite"]
    logger.scalars(state.step, {"loss/epoch": stats["loss"],
                                "train/skipped_nonfinite": state.skipped_nonfinite})
    if _due(state.epoch, cfg.train.val_interval, cfg.train.epochs):
        state.last_metrics = validate(state.step)
        _save_best(cfg, work_dir, c, state)
    if main and _due(state.epoch, cfg.train.checkpoint_interval, cfg.train.epochs):
        writer.submit(_checkpoint(cfg, c, state), work_dir / "last.pt", keep_previous=True)
    if state.epoch < cfg.train.epochs and stop.requested():  # a signal during validation or saving
        _stop(cfg, c, state, stop.signum, writer)


def _stop(cfg, c: Components, state: TrainState, signum: int, writer: BackgroundWriter) -> None:
    """Write last.pt at this step (rank 0; the others wait for it) and raise preempt.Interrupted."""
    path = Path(cfg.work_dir) / "last.pt"
    writer.wait()  # a background write of the epoch's last.pt first, then this one
    if distributed.is_main():
        save_atomic(_checkpoint(cfg, c, state), path, keep_previous=True)
    distributed.barrier()
    where = f"in epoch {state.epoch + 1} after batch {state.batch}" if state.batch else \
        f"after epoch {state.epoch}"
    message = (f"interrupted by {preempt.signal_name(signum)} at step {state.step} ({where}); checkpoint "
               f"{path}; run again with resume=auto to continue (exit status {preempt.RESUMABLE_EXIT})")
    if distributed.is_main():
        print(f"kpdet: {message}", file=sys.stderr, flush=True)
    raise preempt.Interrupted(signum, message)


def _due(epoch: int, interval: int, epochs: int) -> bool:
    """Every `interval` epochs, and after the last one whatever the interval."""
    return epoch % interval == 0 or epoch == epochs


def _seed_epoch(seed: int, epoch: int, loader, skip: int = 0) -> None:
    """Each epoch's data order and augmentation depend on (seed, epoch) alone: resumable exactly.
    `skip`: samples of this epoch already trained (mid-epoch resume), left out by the sampler."""
    loader.sampler.set_epoch(epoch)
    loader.sampler.skip(skip)
    loader.generator.manual_seed(seed * 1000 + epoch)
    seed_everything(seed * 1000 + epoch)


class _Validations:
    """Validate once per step (an in-epoch and an end-of-epoch validation may coincide); the
    running count picks the validations that log images (eval.image_interval)."""

    def __init__(self, run):
        self.run, self.count, self.step, self.metrics = run, 0, None, None

    def __call__(self, step: int) -> dict[str, float]:
        if step != self.step:
            self.metrics, self.step = self.run(step, self.count), step
            self.count += 1
        return self.metrics


def _every_steps(cfg, c: Components, validate):
    """train.val_every_steps: validate inside the epoch every N optimizer steps, then back to training."""
    every = cfg.train.val_every_steps
    if not every:
        return None

    def after_step(step: int) -> None:
        if step % every == 0:
            validate(step)
            c.model.train()

    return after_step


def _trim_history(path: Path, step: int) -> None:
    """On resume, drop validations after the checkpoint's step: the resumed run redoes them."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in lines))


def _validate(cfg, predictor, c: Components, logger, step, index: int = 0) -> dict[str, float]:
    distributed.broadcast_buffers(predictor.model)
    metrics = _evaluate(cfg, predictor, c.val_loader, c.val_set, c.device)
    metrics.update(attribute_run.ground_distance_metrics(c.loss_fn, c.val_set))
    logger.scalars(step, metrics, prefix="val/")
    if distributed.is_main():
        _append_history(Path(cfg.work_dir) / "history.jsonl", step, metrics)
    if cfg.eval.vis_images > 0 and distributed.is_main() and index % cfg.eval.image_interval == 0:
        _log_images(cfg, predictor, c, logger, metrics, step)
    if distributed.is_main():
        print(f"validation at step {step}:\n{summary_table(metrics)}", flush=True)
    return metrics


def _log_images(cfg, predictor, c: Components, logger, metrics: dict[str, float], step: int) -> None:
    """Crop panels (top-down and whole-frame), or whole-image panels for bottom-up points and pose."""
    kind, count = builders.pipeline_kind(cfg), cfg.eval.vis_images
    if kind in ("top_down", "whole_frame"):
        log_panels(logger, predictor, c.val_set, c.val_loader, c.codec, metrics, step, count, c.device)
    else:
        chosen = _pose_predictor(cfg, predictor, c.val_set) if kind == "pose" else predictor
        log_bottom_up_panels(logger, chosen, c.val_set, step, count, c.device, pose_decoding(cfg))


def _pose_predictor(cfg, predictor, dataset) -> PosePredictor:
    """The multi-instance decoder (task pose) around the heatmap predictor's model and codec, flip
    testing with the same flip index (the keypoint spec's when eval.flip_test, else none)."""
    return PosePredictor(predictor.model, predictor.codec, predictor.activation, dataset.spec.num_keypoints,
                         predictor.flip_index, **pose_decoding(cfg))


def _evaluate(cfg, predictor, loader, dataset, device) -> dict[str, float]:
    """Point metrics for point objects (data.bottom_up.task=points), OKS AP of every instance found for
    bottom-up pose (task pose), else the keypoint metrics of the given instances."""
    if builders.pipeline_kind(cfg) == "pose":
        return evaluate_pose(_pose_predictor(cfg, predictor, dataset), loader, dataset, device)
    if builders.pipeline_kind(cfg) == "points":
        bu = cfg.data.bottom_up
        return evaluate_points(predictor, loader, device, cfg.eval.point_thresholds, bu.max_peaks,
                               bu.peak_threshold, bu.nms_kernel)
    return evaluate(predictor, loader, dataset, device, cfg.eval.nme_norm, cfg.eval.nme_pair)


def _append_history(path: Path, step: int, metrics: dict[str, float]) -> None:
    """One JSON line per validation ({"step": N, **metrics}): the metric-against-step curve."""
    with path.open("a") as f:
        f.write(json.dumps({"step": step, **metrics}) + "\n")


def _save_best(cfg, work_dir: Path, c: Components, state: TrainState) -> None:
    value = state.last_metrics[cfg.eval.best_metric]
    if value != value or value > state.best:  # a NaN metric (e.g. no v=0 keypoint) keeps the latest
        if value == value:  # NaN never becomes the best: a later number must still beat the last one
            state.best = value
        if distributed.is_main():
            save_atomic({"model": c.eval_model.state_dict(), "epoch": state.epoch,
                         "metrics": state.last_metrics, "keypoints": spec_to_checkpoint(c.train_set.spec),
                         "categories": _category_ids(c.train_set),
                         "config": OmegaConf.to_yaml(cfg)}, work_dir / "best.pt")


def _checkpoint(cfg, c: Components, state: TrainState) -> dict:
    """Everything needed to continue exactly: weights, optimizer, schedule, scaler, EMA, RNG, config."""
    return {
        "model": distributed.unwrap(c.model).state_dict(), "optimizer": c.optimizer.state_dict(),
        "scheduler": c.scheduler.state_dict(), "scaler": c.scaler.state_dict(),
        "ema": c.ema.state_dict() if c.ema is not None else None,
        "state": {**asdict(state), "seconds": state.elapsed()}, "rng": rng_state(),
        "config": OmegaConf.to_yaml(cfg),
        "keypoints": spec_to_checkpoint(c.train_set.spec), "categories": _category_ids(c.train_set),
        "ground_distance": learner.state_dict() if (learner := getattr(c.loss_fn, "learner", None)) else None,
    }


def _category_ids(dataset) -> list[int]:
    """COCO category id of each heatmap channel group: one for pose, one per channel for point objects."""
    found = [int(category["id"]) for category in getattr(dataset, "categories", [])]
    single = getattr(dataset, "category_id", None)
    return found or ([int(single)] if single is not None else [])


def _dump_nonfinite(work_dir: Path, c: Components, step: int, batch: dict, loss) -> None:
    """Save the weights and the batch that gave a non-finite value, to reproduce it."""
    path = work_dir / f"nonfinite_step{step}.pt"
    save_atomic({"model": distributed.unwrap(c.model).state_dict(), "step": step, "loss": float(loss),
                 "batch": {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}}, path)
    print(f"non-finite value at step {step}: weights and batch saved to {path}", flush=True)


def _resume(cfg, work_dir: Path, c: Components) -> tuple[TrainState, dict | None]:
    """resume=auto continues from the newest readable of work_dir/last.pt, last.prev.pt (none: a
    fresh start); a path resumes from that file. -> (state, the checkpoint's RNG state)."""
    if cfg.resume is None:
        return TrainState(), None
    if cfg.resume == "auto":
        found = find_resumable(work_dir)
        if found is None:
            return TrainState(), None
        checkpoint, path = found
        if path.name != "last.pt" and distributed.is_main() and (work_dir / "last.pt").exists():
            (work_dir / "last.pt").replace(work_dir / "last.pt.corrupt")  # a later save must not rotate it
    else:
        path = Path(cfg.resume)
        checkpoint = load_checkpoint(path)
    if "optimizer" not in checkpoint or "state" not in checkpoint:
        raise CheckpointError(f"{path} holds weights only (a best.pt?): resume needs a run's last.pt")
    load_weights(distributed.unwrap(c.model), checkpoint["model"], path, "this run's config")
    c.optimizer.load_state_dict(checkpoint["optimizer"])
    c.scheduler.load_state_dict(checkpoint["scheduler"])
    c.scaler.load_state_dict(checkpoint["scaler"])
    if c.ema is not None and checkpoint.get("ema") is not None:
        c.ema.load_state_dict(checkpoint["ema"])
    learner = getattr(c.loss_fn, "learner", None)
    if learner is not None and checkpoint.get("ground_distance") is not None:
        learner.load_state_dict(checkpoint["ground_distance"])
    set_rng_state(checkpoint["rng"])
    state = TrainState(**checkpoint["state"])
    if distributed.is_main():
        where = f", batch {state.batch} of epoch {state.epoch + 1}" if state.batch else ""
        print(f"resumed from {path} at epoch {state.epoch}, step {state.step}{where}", flush=True)
    return state, checkpoint["rng"]


def test(cfg: DictConfig, checkpoint_path: str, split: str = "test") -> dict[str, float]:
    """Evaluate a checkpoint's model on `split` (test falls back to val when unset)."""
    device = builders.resolve_device(cfg.device)
    dataset = builders.build_split(cfg, split, train=False)
    loss_fn = builders.build_loss_from_cfg(cfg)
    codec = builders.build_codec_from_cfg(cfg)
    model = builders.build_model_from_cfg(cfg, dataset.spec.num_keypoints, loss_fn.activation,
                                          pretrained=False)  # the checkpoint's weights, next line
    load_weights(model, eval_weights(load_checkpoint(checkpoint_path)), checkpoint_path, "the config")
    model.to(device)
    loader = builders.build_loader(dataset, cfg.eval.batch_size, cfg.data.num_workers, False, cfg.seed)
    flip_index = dataset.spec.flip_index if cfg.eval.flip_test else None
    predictor = make_predictor(model, codec, loss_fn.activation, flip_index)
    return _evaluate(cfg, predictor, loader, dataset, device)
