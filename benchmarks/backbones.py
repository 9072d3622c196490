"""Backbones side by side: parameters, GFLOPs and CPU training images/s, in one run.

    OMP_NUM_THREADS=2 python benchmarks/backbones.py [--config configs/openfield/mse.yaml]
        [--backbones resnet18,resnet50,...] [--batch 8] [--steps 3] [--rounds 3] [--threads 2]

Each model is the full network kpdet trains (trunk + neck + 1x1 heatmap layer, K keypoints of the
config's dataset: 4 for openfield, 17 for the synthetic set). Parameters: all of them.
GFLOPs: multiply-adds / 1e9 of one forward pass (torch.utils.flop_counter on the meta device,
convolutions and matmuls; halved, since it counts a multiply-add as 2), at the config's input size
and at 256x192 (COCO's, where the HRNet paper's Table 1 gives W32 7.1 "GFLOPs": its counter
divides multiply-adds by 1024^3, so 7.1 there is 7.6 here). Training img/s: Adam steps on random
crops against random heatmap targets with the config's loss, model-bound (no loader), batch
`--batch`; the models take turns, `--rounds` rounds of `--steps` timed steps each after one
warm-up step, and the median round counts (a load change on a shared machine hits every model).
Two clocks: wall-clock img/s, and images per CPU-second of this process, which on a shared,
loaded machine is the fair figure at `--threads 1` (it does not count the time other jobs hold
the core; at 2 threads it counts spin-waiting too). Ratios are against the first backbone
(ResNet-18), measured in the same run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from kpdet.config import load_config  # noqa: E402
from kpdet.losses import build_loss  # noqa: E402
from kpdet.models import build_model  # noqa: E402

DEFAULT = "resnet18,resnet50,hrnet_w18_small,hrnet_w32,timm/mobilenetv3_large_100,timm/efficientnet_b0"
KEYPOINTS = {"openfield": 4}  # by config folder; otherwise 17


def gmacs(backbone: str, keypoints: int, size: tuple[int, int]) -> float:
    """Multiply-adds / 1e9 of one forward pass at (W, H), counted on the meta device."""
    with torch.device("meta"):
        model = build_model(backbone, keypoints)
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.zeros(1, 3, size[1], size[0]))
    return counter.get_total_flops() / 2 / 1e9


def train_steps(model, loss, images, targets, optimizer, steps: int) -> tuple[float, float]:
    """(images per wall-clock second, images per CPU-second of this process) over `steps` steps."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss(model(images), targets).backward()
        optimizer.step()
    images_done = steps * images.shape[0]
    return images_done / (time.perf_counter() - start), images_done / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/openfield/mse.yaml")
    parser.add_argument("--backbones", default=DEFAULT)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    width, height = cfg.model.input_size
    keypoints = KEYPOINTS.get(Path(args.config).parent.name, 17)
    names = args.backbones.split(",")
    torch.manual_seed(0)
    loss = build_loss(OmegaConf.to_container(cfg.loss, resolve=True))
    images = torch.randn(args.batch, 3, height, width)
    runs = {}
    for name in names:
        model = build_model(name, keypoints).train()
        targets = torch.rand(args.batch, keypoints, height // 4, width // 4)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        train_steps(model, loss, images, targets, optimizer, 1)  # warm-up: allocations, kernels chosen
        runs[name] = (model, targets, optimizer, [])
    for _ in range(args.rounds):
        for model, targets, optimizer, rates in runs.values():
            rates.append(train_steps(model, loss, images, targets, optimizer, args.steps))
    print(f"config {args.config}: input {width}x{height}, {keypoints} keypoints, loss {cfg.loss.type}, "
          f"batch {args.batch}, {args.threads} threads, median of {args.rounds} rounds x {args.steps} steps")
    print("| backbone | params (M) | GFLOPs @ input | GFLOPs @ 256x192 | train img/s (wall) | img per CPU-s "
          "| params x | GFLOPs x | img/s x (wall) | img per CPU-s x |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = None
    for name, (model, _, _, rates) in runs.items():
        params = sum(p.numel() for p in model.parameters()) / 1e6
        row = (params, gmacs(name, keypoints, (width, height)), gmacs(name, keypoints, (192, 256)),
               statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates))
        base = base or row
        ratios = " | ".join(f"{row[i] / base[i]:.2f}" for i in (0, 1, 3, 4))
        values = f"{row[0]:.2f} | {row[1]:.2f} | {row[2]:.2f} | {row[3]:.1f} | {row[4]:.1f}"
        print(f"| {name} | {values} | {ratios} |")


if __name__ == "__main__":
    main()
