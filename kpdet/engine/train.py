"""One training epoch: crops -> logits; keypoints -> heatmap targets on the device; loss; step."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from kpdet.codecs.instances import encode_point_maps
from kpdet.codecs.pose import encode_pose_targets
from kpdet.data.device_augment import augment_batch
from kpdet.engine import distributed
from kpdet.losses.ignore import ignore_pixels
from kpdet.losses.ordinal import WithAttributeLoss

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str):
    """CUDA autocast in bf16/fp16; a no-op on the CPU or with amp=none."""
    if amp == "none" or device.type != "cuda":
        return nullcontext()
    return torch.autocast("cuda", dtype=AMP_DTYPES[amp])


@dataclass
class StepOptions:
    amp: str = "none"  # none | bf16 | fp16
    grad_clip: float | None = None  # max gradient norm
    accumulate: int = 1  # batches per optimizer step
    skip_nonfinite: bool = False  # count and skip non-finite steps instead of raising
    channels_last: bool = False
    max_iters: int | None = None  # batches per epoch cap
    log_interval: int = 20


class NonFiniteError(FloatingPointError):
    """A non-finite loss or gradient; the message names the step, the value and the samples."""


def train_one_epoch(model: nn.Module, loss_fn: nn.Module, codec, loader, optimizer, scheduler, scaler,
                    device: torch.device, epoch: int, step: int, options: StepOptions,
                    ema=None, log=None, on_nonfinite=None, progress: bool = True,
                    after_step=None, start: int = 0, stats: dict | None = None,
                    stop=None) -> tuple[int, dict]:
    """Train for one pass over `loader`; returns (optimizer steps so far, epoch stats).

    Batches carrying "heatmaps" were encoded by the data workers; otherwise the
    codec renders targets here, on the device. `log(step, scalars)` gets
    loss/total, lr and train/images_per_s every `options.log_interval` steps.
    `on_nonfinite(step, batch, loss)` runs before a NonFiniteError is raised.
    `after_step(step)` runs after every optimizer step (e.g. validation every N steps).
    `progress`: a tqdm bar on a terminal; when output goes to a file or a pipe, one plain line
    every `options.log_interval` steps (and at the first and last) instead of the bar's redraws.
    Mid-epoch resume: `start` batches of this epoch were trained before (the loader's sampler skips
    them) and `stats` are their running stats. `stop()` is asked after every optimizer step (or
    skipped one): when True the epoch ends there and stats["stopped_at"] is the batches done.
    """
    from tqdm import tqdm

    model.train()
    stats = dict(stats or {"loss_sum": 0.0, "batches": 0, "skipped_nonfinite": 0})
    stats["stopped_at"] = None
    tick, seen = time.perf_counter(), 0
    total = len(loader) if options.max_iters is None else min(len(loader), options.max_iters)
    use_bar = progress and on_terminal()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", total=total, initial=start, disable=not use_bar,
               dynamic_ncols=True, leave=False)
    for it, batch in enumerate(bar, start):
        if it >= total:
            break
        loss = _forward_backward(model, loss_fn, codec, batch, scaler, device, options)
        last_of_group = (it + 1) % options.accumulate == 0 or it + 1 == total
        if not last_of_group:
            continue
        if _finite_step(model, loss, scaler, optimizer, options):
            _optimizer_step(model, optimizer, scheduler, scaler, options, ema)
            step, seen = step + 1, seen + len(batch["image"]) * options.accumulate
            stats["loss_sum"], stats["batches"] = stats["loss_sum"] + loss.item(), stats["batches"] + 1
            due = step % options.log_interval == 0 or it == start
            if due or (progress and it + 1 == total):
                _report(epoch, it, total, step, loss.item(), optimizer, seen / (time.perf_counter() - tick),
                        bar if use_bar else None, progress, log if due else None)
            if after_step is not None:
                after_step(step)
        else:
            if on_nonfinite is not None and not options.skip_nonfinite:
                on_nonfinite(step, batch, loss)
            _raise_or_count(loss, step, batch, options, stats, optimizer)
        if stop is not None and stop():
            stats["stopped_at"] = it + 1
            break
    stats["loss"] = stats["loss_sum"] / max(1, stats["batches"])
    return step, stats


def _report(epoch, it, total, step, loss, optimizer, rate, bar, progress, log) -> None:
    """The progress bar's postfix or a plain progress line, and the TensorBoard scalars when `log`."""
    lr = optimizer.param_groups[0]["lr"]
    if bar is not None:
        bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.1f}")
    elif progress:
        print(progress_line(epoch, it + 1, total, step, loss, lr, rate), flush=True)
    if log is not None:
        log(step, {"loss/total": loss, "lr": lr, "train/images_per_s": rate})


def on_terminal() -> bool:
    """True when both output streams are terminals: tqdm redraws its bar on stderr with carriage
    returns, which a log file keeps as hundreds of lines."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def progress_line(epoch: int, it: int, total: int, step: int, loss: float, lr: float, rate: float) -> str:
    """One plain progress line: `epoch 1 [20/139] step 20 loss 1.2345 lr 2.00e-03 25.1 img/s`."""
    return f"epoch {epoch + 1} [{it}/{total}] step {step} loss {loss:.4f} lr {lr:.2e} {rate:.1f} img/s"


def _forward_backward(model, loss_fn, codec, batch, scaler, device, options: StepOptions) -> torch.Tensor:
    if "canvas_to_crop" in batch:  # data.augment_on=device: warp and jitter the batch here
        batch = augment_batch(batch, device)
    images = batch["image"].to(device, non_blocking=True)
    if options.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    targets, weights = encode_targets(codec, batch, device)
    if getattr(loss_fn, "mode", None) == "multiclass":
        weights = None  # softmax over keypoints: per-channel weights are undefined (CONTRACT.md)
    ignore = batch["ignore"].to(device, non_blocking=True) if "ignore" in batch else None  # bottom-up
    with autocast(device, options.amp):
        if ignore is not None:
            loss = loss_fn(ignore_pixels(model(images), ignore), targets, weights)
        elif isinstance(loss_fn, WithAttributeLoss):  # model.attribute: the per-instance class too
            classes = batch["attribute"].to(device, non_blocking=True)
            with observe_features(model, loss_fn.learner, classes):
                outputs = model(images, with_attribute=True)
            loss = loss_fn(outputs, (targets, classes), weights)
        else:
            loss = loss_fn(model(images), targets, weights)
    scaler.scale(loss / options.accumulate).backward()
    return loss.detach()


@contextmanager
def observe_features(model: nn.Module, learner, labels: torch.Tensor):
    """model.attribute.ground_distance=learned: during this forward pass, hand the attribute
    classifier's input (the pooled features [B, F], read by a pre-hook on its Linear layer) and
    the batch's classes [B] to the GroundDistanceLearner. No learner: nothing."""
    if learner is None:
        yield
        return
    classifier = distributed.unwrap(model).attribute.fc
    handle = classifier.register_forward_pre_hook(lambda _m, inputs: learner.observe(inputs[0], labels))
    try:
        yield
    finally:
        handle.remove()


def encode_targets(codec, batch: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps [B, K, h, w] (ordinal codecs: a pair of x, y targets) and weights [B, K]: from the
    batch when the loader rendered them, else rendered by the codec on `device` from keypoints
    [B, K, 2] and visibility [B, K]."""
    if "heatmaps" in batch:
        targets = batch["heatmaps"]  # a list [x, y] for ordinal codecs (collated tuples)
        if isinstance(targets, (list, tuple)):
            targets = tuple(t.to(device, non_blocking=True) for t in targets)
        else:
            targets = targets.to(device, non_blocking=True)
        return targets, batch["weights"].to(device, non_blocking=True)
    with torch.no_grad():
        if "centres" in batch:  # bottom-up pose: keypoint and centre maps, centre-to-keypoint displacements
            keys = ("keypoints", "visible", "centres", "present")
            return encode_pose_targets(codec, *(batch[k].to(device) for k in keys))
        if "classes" in batch:  # bottom-up point objects: every instance of a class in one map
            return encode_point_maps(codec, batch["keypoints"].to(device, non_blocking=True),
                                     batch["classes"].to(device), batch["visible"].to(device))
        return codec.encode(batch["keypoints"].to(device, non_blocking=True),
                            batch["visible"].to(device, non_blocking=True))


def _finite_step(model, loss, scaler, optimizer, options: StepOptions) -> bool:
    """False for a non-finite loss, or non-finite gradients that no fp16 loss scaler will handle."""
    if not torch.isfinite(loss):
        return False
    if scaler.is_enabled():
        return True  # GradScaler skips inf/nan steps itself and lowers its scale
    return all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def _raise_or_count(loss, step: int, batch: dict, options: StepOptions, stats: dict, optimizer) -> None:
    ids = batch["ann_id"].tolist()
    what = "loss" if not torch.isfinite(loss) else "gradient"
    if not options.skip_nonfinite:
        raise NonFiniteError(f"non-finite {what} at step {step} (loss {loss.item()}); annotation ids of "
                             f"the batch: {ids}. Set train.skip_nonfinite=true to skip such steps.")
    stats["skipped_nonfinite"] += 1
    optimizer.zero_grad(set_to_none=True)


def _optimizer_step(model, optimizer, scheduler, scaler, options: StepOptions, ema) -> None:
    if options.grad_clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    if ema is not None:
        ema.update_parameters(model)
