"""One training epoch: crops -> logits; keypoints -> heatmap targets on the device; loss; step."""
from __future__ import annotations

import math
import time
from contextlib import nullcontext

import torch
from torch import nn

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str):
    """CUDA autocast in bf16/fp16; a no-op on the CPU or with amp=none."""
    if amp == "none" or device.type != "cuda":
        return nullcontext()
    return torch.autocast("cuda", dtype=AMP_DTYPES[amp])


def train_one_epoch(model: nn.Module, loss_fn: nn.Module, codec, loader, optimizer, scheduler, scaler,
                    device: torch.device, epoch: int, step: int, amp: str = "none",
                    grad_clip: float | None = None, max_iters: int | None = None,
                    log=None, log_interval: int = 20, progress: bool = True) -> tuple[int, float]:
    """Train for one pass over `loader`; returns (global step, mean loss).

    `log(step, scalars)` receives loss/total, lr and train/images_per_s every
    `log_interval` steps.
    """
    from tqdm import tqdm

    model.train()
    total, count, tick, seen = 0.0, 0, time.perf_counter(), 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", total=_length(loader, max_iters),
               disable=not progress, dynamic_ncols=True, leave=False)
    for it, batch in enumerate(bar):
        if max_iters is not None and it >= max_iters:
            break
        images = batch["image"].to(device, non_blocking=True)
        with torch.no_grad():
            targets, weights = codec.encode(batch["keypoints"].to(device), batch["visible"].to(device))
        with autocast(device, amp):
            loss = loss_fn(model(images), targets, weights)
        _check_finite(loss, step, batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step, seen = step + 1, seen + len(images)
        total, count = total + loss.item(), count + 1
        if step % log_interval == 0 or it == 0:
            rate = seen / (time.perf_counter() - tick)
            bar.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{rate:.1f}")
            if log is not None:
                log(step, {"loss/total": loss.item(), "lr": optimizer.param_groups[0]["lr"],
                           "train/images_per_s": rate})
    return step, total / max(1, count)


def _length(loader, max_iters: int | None) -> int:
    return len(loader) if max_iters is None else min(len(loader), max_iters)


def _check_finite(loss: torch.Tensor, step: int, batch: dict) -> None:
    value = loss.item()
    if not math.isfinite(value):
        ids = batch["ann_id"].tolist()
        raise FloatingPointError(f"non-finite loss {value} at step {step}; annotation ids of the batch: "
                                 f"{ids}")
