"""Loss speed and memory: forward+backward time and peak extra memory per loss.

    python benchmarks/losses.py [--reps 9] [--threads 1] [--quick] [--clock cpu|wall]

Times (process CPU time on CPU, so that other processes on a shared machine do not count;
wall time on CUDA) are the best of `reps` runs, the losses interleaved round-robin (the
median is printed too); ratios use the best times of this one run. Peak memory counts
every tensor storage allocated during forward+backward (a dispatch-mode tracker, CPU or
CUDA), including the 1x gradient of the logits, in units of the logits tensor.
The reference transcription of distance_aware_focal is CenterNet's `_neg_loss` on its
clamped `_sigmoid` (xingyizhou/CenterNet src/lib/models/losses.py; sigmoid taken out of
place here because pred is a leaf). ce has torch's BCE-with-logits as reference.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import weakref
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

try:
    from kpdet.losses import build_loss, list_losses
except ImportError:  # run as `python benchmarks/losses.py` without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from kpdet.losses import build_loss, list_losses

POSE, BIG = (64, 17, 64, 48), (16, 80, 128, 128)


def centernet_neg_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Transcription of CenterNet `_neg_loss(_sigmoid(pred), gt)`."""
    pred = torch.clamp(pred.sigmoid(), min=1e-4, max=1 - 1e-4)
    pos_inds = gt.eq(1).float()
    neg_inds = gt.lt(1).float()
    neg_weights = torch.pow(1 - gt, 4)
    pos_loss = (torch.log(pred) * torch.pow(1 - pred, 2) * pos_inds).sum()
    neg_loss = (torch.log(1 - pred) * torch.pow(pred, 2) * neg_weights * neg_inds).sum()
    num_pos = pos_inds.float().sum()
    return -neg_loss if num_pos == 0 else -(pos_loss + neg_loss) / num_pos


class PeakMemory(TorchDispatchMode):
    """Live bytes of storages created inside the mode; `peak` is their maximum."""

    def __init__(self, external: list[torch.Tensor]):
        super().__init__()
        self.live: dict[int, int] = {}
        self.skip = {t.untyped_storage().data_ptr() for t in external}
        self.now = self.peak = 0

    def _freed(self, ptr: int) -> None:
        self.now -= self.live.pop(ptr, 0)

    def _track(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr in self.skip or ptr in self.live or st.nbytes() == 0:
            return
        self.live[ptr] = st.nbytes()
        self.now += st.nbytes()
        self.peak = max(self.peak, self.now)
        weakref.finalize(st, self._freed, ptr)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


def heatmap_inputs(shape, device, seed=0):
    """Logits ~ N(0, 2^2) and Gaussian heatmaps (sigma 2 px, one exact 1.0 peak per channel)."""
    g = torch.Generator().manual_seed(seed)
    B, K, H, W = shape
    ys, xs = torch.arange(H).view(H, 1), torch.arange(W).view(1, W)
    cy, cx = torch.randint(0, H, (B, K, 1, 1), generator=g), torch.randint(0, W, (B, K, 1, 1), generator=g)
    target = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 8.0)
    pred = torch.randn(shape, generator=g) * 2
    return pred.to(device), target.to(device), torch.ones(B, K, device=device)


def fwd_bwd(fn, pred, target):
    x = pred.clone().requires_grad_()
    fn(x, target).backward()
    return x


def timed(fn, pred, target, sync, clock) -> float:
    x = pred.clone().requires_grad_()
    sync()
    t0 = clock()
    fn(x, target).backward()
    sync()
    return (clock() - t0) * 1e3


def peak_memory(fn, pred, target) -> float:
    """Peak extra memory of fwd+bwd in units of pred's size."""
    x = pred.clone().requires_grad_()
    with PeakMemory([x, target]) as mode:
        fn(x, target).backward()
    return mode.peak / (pred.numel() * pred.element_size())


def _with_weight(loss):
    """Call with weight [B, C] of ones (as training does), or None for multiclass-only losses (wce)."""
    if getattr(loss, "mode", None) == "multiclass":
        return lambda x, y: loss(x, y)
    return lambda x, y: loss(x, y, torch.ones(x.shape[:2], device=x.device))


def candidates(shape):
    """name -> callable(pred, target); the big tensor gets only mse, daf and its reference."""
    fns = {"F.mse_loss": F.mse_loss, "centernet_neg_loss": centernet_neg_loss,
           "F.binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits}
    names = list_losses() if shape == POSE else ["mse", "distance_aware_focal"]
    for name in names:
        loss = build_loss(name)
        fns[name] = _with_weight(loss)
    if shape != POSE:
        fns.pop("F.binary_cross_entropy_with_logits")
    return fns


REFERENCE = {"distance_aware_focal": "centernet_neg_loss", "ce": "F.binary_cross_entropy_with_logits",
             "mse": "F.mse_loss"}


def bench_shape(shape, device, reps, clock):
    pred, target, _ = heatmap_inputs(shape, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fns = candidates(shape)
    times = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fwd_bwd(fn, pred, target)
    for _ in range(reps):
        for k, fn in fns.items():
            times[k].append(timed(fn, pred, target, sync, clock))
    best = {k: min(v) for k, v in times.items()}
    rows = []
    for k, fn in fns.items():
        ref = REFERENCE.get(k)
        rows.append((k, shape, best[k], statistics.median(times[k]), best[k] / best["F.mse_loss"],
                     best[ref] / best[k] if ref else None, peak_memory(fn, pred, target)))
    return rows


def table(rows, device_name):
    out = [f"Device: {device_name}. Forward+backward; ratios from the best times of this run.", "",
           "| loss | shape | ms fwd+bwd (best) | ms (median) | / F.mse_loss | reference / this (speed-up) "
           "| peak extra mem (x logits) |",
           "|---|---|---|---|---|---|---|"]
    for name, shape, ms, med, r_mse, r_ref, mem in rows:
        ref = f"{r_ref:.2f}" if r_ref is not None else "-"
        out.append(f"| {name} | {list(shape)} | {ms:.1f} | {med:.1f} | {r_mse:.2f} | {ref} | {mem:.2f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="pose tensor only")
    ap.add_argument("--clock", choices=["cpu", "wall"], default=None,
                    help="cpu: process CPU time, robust to other processes on a shared machine "
                         "(default on CPU); wall: perf_counter (default on CUDA)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = f"CPU, {torch.get_num_threads()} threads"
    name = torch.cuda.get_device_name() if args.device == "cuda" else cpu
    clock_name = args.clock or ("wall" if args.device == "cuda" else "cpu")
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    rows = []
    for shape in (POSE,) if args.quick else (POSE, BIG):
        rows += bench_shape(shape, args.device, args.reps, clock)
    print(table(rows, f"{name}, {clock_name} clock"))


if __name__ == "__main__":
    main()
