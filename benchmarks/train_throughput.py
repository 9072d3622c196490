"""Training throughput: the full pipeline against the same model fed with ready tensors.

    python benchmarks/train_throughput.py [--config configs/synthetic/focal.yaml] [--iters 20]
        [--variants loader,cache,device,cache+device] [--repeats 1] [key=value ...]

Prints images/s of (a) the model-bound loop (crops and targets already in memory),
(b) the full pipeline (DataLoader with data.num_workers workers, targets rendered in
the step or in the loader per train.device_targets) for each data path variant, each
with its ratio to (a) measured in the same run, and per-stage times per image: decode,
warp, photometric augmentation, encode, training step. Variants (`--variants`):
`loader` (data.cache=none, data.augment_on=loader: the default path), `cache`
(data.cache=ram), `device` (data.augment_on=device), `cache+device` (both). With
`--repeats N` the variants are measured N times in turn (interleaved, so that a
change in the machine's load hits all of them alike) and the median is printed.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kpdet.config import load_config  # noqa: E402
from kpdet.data import transforms as T  # noqa: E402
from kpdet.data.coco import read_image  # noqa: E402
from kpdet.engine import runner  # noqa: E402
from kpdet.engine.train import StepOptions, train_one_epoch  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_epoch(c, loader, iters: int, options: StepOptions) -> float:
    """images/s over `iters` optimizer steps after 3 warm-up steps."""
    warm = StepOptions(**{**vars(options), "max_iters": 3})
    train_one_epoch(c.model, c.loss_fn, c.codec, loader, c.optimizer, c.scheduler, c.scaler, c.device, 0, 0,
                    warm, progress=False)
    sync(c.device)
    start = time.perf_counter()
    timed = StepOptions(**{**vars(options), "max_iters": iters})
    train_one_epoch(c.model, c.loss_fn, c.codec, loader, c.optimizer, c.scheduler, c.scaler, c.device, 0, 0,
                    timed, progress=False)
    sync(c.device)
    return iters * loader.batch_size / (time.perf_counter() - start)


def ready_batches(loader, count: int) -> list[dict]:
    """`count` batches materialised in memory: the model-bound feed."""
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == count:
            return batches
    return batches


class Replay:
    """A loader-like list of ready batches, cycled."""

    def __init__(self, batches, batch_size):
        self.batches, self.batch_size = batches, batch_size

    def __len__(self):
        return 10**9

    def __iter__(self):
        while True:
            yield from self.batches


def stage_times(c, samples: int) -> dict[str, float]:
    """ms per image of each data stage, measured in this process on `samples` instances."""
    dataset = getattr(c.train_set, "dataset", c.train_set)
    size = dataset.input_size
    times = {"decode": 0.0, "warp": 0.0, "augment": 0.0}
    rng = np.random.default_rng(0)
    photometric = T.build_photometric()
    for ann, info in dataset.samples[:samples]:
        t0 = time.perf_counter()
        image = read_image(dataset.img_dir / info["file_name"])
        t1 = time.perf_counter()
        center, scale = T.box_to_center_scale(ann["bbox"], size[0] / size[1], dataset.bbox_padding)
        crop = T.warp_image(image, T.crop_matrix(center, scale, size, rng.uniform(-30, 30)), size)
        t2 = time.perf_counter()
        photometric(image=crop)
        t3 = time.perf_counter()
        times["decode"] += t1 - t0
        times["warp"] += t2 - t1
        times["augment"] += t3 - t2
    return {k: 1000 * v / samples for k, v in times.items()}


def encode_ms(c, batch) -> float:
    keypoints, visible = batch["keypoints"].to(c.device), batch["visible"].to(c.device)
    c.codec.encode(keypoints, visible)
    sync(c.device)
    start = time.perf_counter()
    for _ in range(10):
        c.codec.encode(keypoints, visible)
    sync(c.device)
    return 1000 * (time.perf_counter() - start) / 10 / len(keypoints)


VARIANTS = {  # name -> overrides of the data path
    "loader": ["data.cache=none", "data.augment_on=loader"],
    "cache": ["data.cache=ram", "data.augment_on=loader"],
    "device": ["data.cache=none", "data.augment_on=device"],
    "cache+device": ["data.cache=ram", "data.augment_on=device"],
}


def sample_ms(args, variant: str, samples: int = 64) -> float:
    """ms of loader work per training sample (dataset[i] in this process) on a variant's data path:
    what each loader worker spends per image, the figure that sets how many workers a GPU needs."""
    cfg = load_config(args.config, ["eval.vis_images=0", *args.overrides, *VARIANTS[variant]])
    dataset = runner.builders.build_split(cfg, "train", train=True)
    dataset[0]  # albumentations' lazy import, the cache's first touch
    start = time.perf_counter()
    for i in range(samples):
        dataset[i % len(dataset)]
    return 1000 * (time.perf_counter() - start) / samples


def pipeline_rate(args, variant: str, options: StepOptions) -> float:
    """Full-pipeline images/s of one variant, built afresh (its own loader workers)."""
    cfg = load_config(args.config, ["eval.vis_images=0", *args.overrides, *VARIANTS[variant]])
    runner.seed_everything(cfg.seed)
    c = runner.build_components(cfg)
    rate = timed_epoch(c, c.train_loader, args.iters, options)
    del c
    gc.collect()
    return rate


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/synthetic/focal.yaml")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--variants", default="loader,cache,device,cache+device")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    cfg = load_config(args.config, ["eval.vis_images=0", *args.overrides, *VARIANTS["loader"]])
    runner.seed_everything(cfg.seed)
    c = runner.build_components(cfg)
    options = runner.step_options(cfg)
    ready = Replay(ready_batches(c.train_loader, 4), c.train_loader.batch_size)
    bound, rates = [], {v: [] for v in variants}
    for _ in range(args.repeats):
        bound.append(timed_epoch(c, ready, args.iters, options))
        for variant in variants:
            rates[variant].append(pipeline_rate(args, variant, options))
    model_bound = statistics.median(bound)
    stages = stage_times(c, 64)
    stages["encode"] = encode_ms(c, ready.batches[0])
    stages["step"] = 1000 / model_bound
    for variant in variants:
        stages[f"loader sample, {variant} path"] = sample_ms(args, variant)
    cpu = f"CPU ({torch.get_num_threads()} threads)"
    device = torch.cuda.get_device_name() if c.device.type == "cuda" else cpu
    on_device = runner.builders.device_targets(cfg, c.device)
    print(f"device: {device}; batch {cfg.train.batch_size}; input {list(cfg.model.input_size)}; "
          f"workers {cfg.data.num_workers}; amp {cfg.train.amp}; targets on device (loader variant): "
          f"{on_device}; median of {args.repeats}")
    print(f"| feed | images/s | ratio to model-bound |\n|---|---|---|\n"
          f"| model-bound (ready tensors) | {model_bound:.1f} | 1.00 |")
    for variant in variants:
        rate = statistics.median(rates[variant])
        print(f"| pipeline: {variant} ({' '.join(VARIANTS[variant])}) | {rate:.1f} | "
              f"{rate / model_bound:.2f} |")
    print("| stage | ms per image |\n|---|---|")
    for name, value in stages.items():
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
