"""Inference latency and throughput of the crop-level predictor: network + activation + codec decode.

    python benchmarks/inference.py [--device auto|cpu|cuda] [--sizes 192x256,96x128] [--reps 5]
                                   [--threads N] [--backends eager,compile,onnx] [--out FILE.md]

Crops are ready tensors (no image decoding or warping); each row times `predictor(crops)`
as `kpdet.Predictor` calls it: batch 1 (per-image latency, ms) and batch 32 (throughput,
images/s). Backends: PyTorch eager; torch.compile of the network (where it compiles;
its compile time is reported separately); onnxruntime running the exported network
(tools/export.py's file) with the same decoding. On CUDA also eager with bf16 autocast
and channels_last. Model: the default config's network (ResNet-18 SimpleBaseline,
head 256 channels, 17 keypoints), random weights. Times are medians of `reps` timed
calls after warm-up; ratios are against eager at the same size and batch, from this run.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from kpdet.codecs import build_codec  # noqa: E402
from kpdet.export import OnnxModel, export_onnx  # noqa: E402
from kpdet.models import build_model  # noqa: E402
from kpdet.predict import make_predictor  # noqa: E402

BATCHES = (1, 32)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_ms(call, device: torch.device, reps: int, clock=time.perf_counter, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    sync(device)
    times = []
    for _ in range(reps):
        start = clock()
        call()
        sync(device)
        times.append(clock() - start)
    return 1000 * statistics.median(times)


class Autocast(torch.nn.Module):
    """The network under CUDA bf16 autocast with channels_last inputs."""

    def __init__(self, model):
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, images):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return self.model(images.contiguous(memory_format=torch.channels_last))


def backends(model, size, device, names, workdir: Path) -> dict:
    """name -> (network callable or None, note)."""
    found = {"eager": (model, "")}
    if device.type == "cuda":
        found["eager bf16 channels_last"] = (Autocast(model), "")
    if "compile" in names:
        try:
            compiled = torch.compile(model)
            start = time.perf_counter()
            with torch.no_grad():
                compiled(torch.zeros(1, 3, size[1], size[0], device=device))
            sync(device)
            found["torch.compile"] = (compiled, f"first call (compile) {time.perf_counter() - start:.0f} s")
        except Exception as error:  # noqa: BLE001 (report any compiler failure and go on)
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
            found["torch.compile"] = (None, f"failed: {reason}")
    if "onnx" in names:
        path = export_onnx(model, workdir / f"model_{size[0]}x{size[1]}.onnx", size)
        providers = ["CUDAExecutionProvider"] if device.type == "cuda" else ["CPUExecutionProvider"]
        try:
            threads = torch.get_num_threads() if device.type == "cpu" else None
            onnx = OnnxModel(path, providers, threads=threads)
            found["onnxruntime"] = (onnx, f"provider {onnx.session.get_providers()[0]}")
        except Exception as error:  # noqa: BLE001
            found["onnxruntime"] = (None, f"failed: {str(error).splitlines()[0][:120]}")
    return found


def measure(size, device, names, reps, workdir, clock) -> list[dict]:
    torch.manual_seed(0)
    model = build_model("resnet18", 17, None, 256, 3).to(device).eval()
    heatmap = (size[0] // 4, size[1] // 4)
    codec = build_codec({"type": "msra", "sigma": 2.0}, input_size=size, heatmap_size=heatmap)
    rows = []
    for name, (network, note) in backends(model, size, device, names, workdir).items():
        for batch in BATCHES:
            row = {"size": f"{size[0]}x{size[1]}", "backend": name, "batch": batch, "note": note}
            if network is not None:
                predictor = make_predictor(network, codec, "sigmoid")
                crops = torch.randn(batch, 3, size[1], size[0], device=device)
                row["ms"] = median_ms(lambda: predictor(crops), device, reps, clock)  # noqa: B023
            rows.append(row)
            print(row, flush=True)
    return rows


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, IndexError):
        names = [line for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; "
            f"load average {load:.1f} at the start")


def table(rows: list[dict]) -> str:
    eager = {(r["size"], r["batch"]): r.get("ms") for r in rows if r["backend"] == "eager"}
    lines = ["| input (W x H) | backend | batch | ms per batch | ms per image | images/s | vs eager | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "ms" not in r:
            lines.append(f"| {r['size']} | {r['backend']} | {r['batch']} | - | - | - | - | {r['note']} |")
            continue
        base = eager[(r["size"], r["batch"])]
        lines.append(f"| {r['size']} | {r['backend']} | {r['batch']} | {r['ms']:.1f} "
                     f"| {r['ms'] / r['batch']:.2f} | {1000 * r['batch'] / r['ms']:.1f} "
                     f"| {base / r['ms']:.2f}x | {r['note']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--sizes", default="192x256,96x128", help="W x H of the network input")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime intra-op threads")
    parser.add_argument("--backends", default="eager,compile,onnx")
    parser.add_argument("--out", help="also write the table (Markdown) to this file")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: process CPU time (with --threads 1 close to an idle core's wall time on a "
                             "machine shared with other jobs); wall: perf_counter")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = set(args.backends.split(","))
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as workdir:
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        rows = [row for size in sizes
                for row in measure(size, device, names, args.reps, Path(workdir), clock)]
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    report = (f"Machine: {machine(device)}; torch {torch.__version__}; {args.clock} clock; "
              f"uptime at the end: {uptime}\n\n"
              f"{table(rows)}\n")
    print(report)
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
