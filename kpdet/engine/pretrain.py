"""Pretraining without a hub: a trunk learned on the embedded synthetic set, built once and cached.

`model.pretrained: synthetic` (or `synthetic:<epochs>`, or `synthetic:<epochs>:<images>`) in any
config asks for the trunk of `model.backbone` trained on the synthetic multi-figure set
(`synthetic/focal` as shipped, for <epochs> epochs, default DEFAULT_EPOCHS, on <images> generated
training images, default DEFAULT_IMAGES: the shipped set). `resolve_pretrained` turns the name
into the path of the cached trunk file, pretraining first when the cache lacks it; the model
builder then loads that file like any other `model.pretrained` file. The cache is
`model.pretrained_cache`, else $KPDET_CACHE, else ~/.cache/kpdet; its synthetic data is
generated there once (per number of images).

A trunk file is {"trunk": the backbone's state dict, "backbone": name, "pretrain": provenance}.
"""
from __future__ import annotations

import copy
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import torch
from omegaconf import DictConfig, OmegaConf

from kpdet.config import ConfigError, load_config
from kpdet.engine.checkpoint import save_atomic
from kpdet.errors import UserError

SYNTHETIC = "synthetic"
DEFAULT_EPOCHS = 5  # 695 steps; openfield MSE, 1,040 steps, 3 seeds: 1 epoch no gain, 5 -0.19 px, 20 -0.25
DEFAULT_IMAGES = 2000  # the shipped set's data.synthetic.num_train
BASE = "synthetic/focal"
FIGURES_PER_IMAGE = 2.23  # the synthetic set: 4,462 figures (top-down crops) in 2,000 images
CROPS_PER_S_CPU = 12  # the slower 2-core CPU machines (README); for the first-use time estimate


class SyntheticBudget(NamedTuple):
    epochs: int
    images: int = DEFAULT_IMAGES  # training images generated for it (an epoch's steps grow with it)


def synthetic_budget(pretrained: str | None) -> SyntheticBudget | None:
    """`synthetic` -> (DEFAULT_EPOCHS, DEFAULT_IMAGES), `synthetic:5` -> (5, DEFAULT_IMAGES),
    `synthetic:1:10000` -> one epoch of 10,000 generated images; anything else -> None."""
    if pretrained is None or pretrained.split(":")[0] != SYNTHETIC:
        return None
    numbers = pretrained.split(":")[1:]
    if not numbers:
        return SyntheticBudget(DEFAULT_EPOCHS)
    if len(numbers) > 2 or not all(n.isdigit() and int(n) >= 1 for n in numbers):
        raise ConfigError(f"model.pretrained={pretrained!r}: after 'synthetic:' come the epochs and "
                          "optionally the number of generated images, each >= 1, e.g. synthetic:5 or "
                          "synthetic:1:10000")
    return SyntheticBudget(*map(int, numbers))


def cache_root(configured: str | None = None) -> Path:
    return Path(configured or os.environ.get("KPDET_CACHE") or Path.home() / ".cache" / "kpdet").expanduser()


def trunk_file(cache: Path, backbone: str, epochs: int, seed: int = 0, base: str = BASE,
               images: int = DEFAULT_IMAGES) -> Path:
    size = "" if images == DEFAULT_IMAGES else f"_n{images}"
    return cache / "pretrained" / f"{base.replace('/', '-')}_{backbone}_e{epochs}{size}_s{seed}.pt"


def synthetic_data(cache: Path, images: int = DEFAULT_IMAGES) -> Path:
    """Where the pretraining data of `images` training images is generated, once."""
    return cache / ("synthetic" if images == DEFAULT_IMAGES else f"synthetic_n{images}")


def synthetic_trunk(cfg: DictConfig) -> Path | None:
    """The cached trunk file that model.pretrained=synthetic[:N[:M]] stands for (built or not); None
    for any other model.pretrained."""
    budget = synthetic_budget(cfg.model.pretrained)
    if budget is None:
        return None
    return trunk_file(cache_root(cfg.model.pretrained_cache), cfg.model.backbone, budget.epochs,
                      images=budget.images)


def resolve_pretrained(cfg: DictConfig) -> DictConfig:
    """`cfg` with model.pretrained=synthetic[:N[:M]] replaced by the cached trunk's path (built if
    missing)."""
    budget = synthetic_budget(cfg.model.pretrained)
    if budget is None:
        return cfg
    (epochs, images), cache = budget, cache_root(cfg.model.pretrained_cache)
    path = trunk_file(cache, cfg.model.backbone, epochs, images=images)
    if not path.is_file():
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: one process builds it, beforehand
            raise UserError(f"model.pretrained={cfg.model.pretrained}: {path} is not built yet; build it "
                            f"once before torchrun: kpdet pretrain --backbone {cfg.model.backbone} "
                            f"--epochs {epochs} --images {images}")
        pretrain(cfg.model.backbone, epochs, cache, images=images)
    cfg = copy.deepcopy(cfg)
    cfg.model.pretrained = str(path)
    return cfg


def pretrain(backbone: str, epochs: int, cache: Path, seed: int = 0, base: str = BASE,
             overrides: tuple[str, ...] = (), images: int = DEFAULT_IMAGES) -> Path:
    """Train `base` with `backbone` for `epochs` on a synthetic set of `images` training images under
    `cache` and write the trunk file; an existing file is reused. A lock lets concurrent runs (a
    study) build it once."""
    path = trunk_file(cache, backbone, epochs, seed, base, images)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_suffix(".lock")):
        if path.is_file():
            return path
        cfg = _pretrain_config(backbone, epochs, synthetic_data(cache, images), seed, base,
                               (f"data.synthetic.num_train={images}", *overrides), path)
        crops = round(cfg.data.synthetic.num_train * FIGURES_PER_IMAGE) * epochs
        print(f"pretraining the {backbone} trunk on the synthetic set ({base}, {epochs} epoch(s), about "
              f"{crops // cfg.train.batch_size} steps): up to {crops / CROPS_PER_S_CPU / 60:.0f} min on a "
              f"2-core CPU (ResNet-18), far less on a GPU; done once, later runs reuse {path}", flush=True)
        start = time.perf_counter()
        from kpdet.engine.runner import fit  # the runner imports this module

        metrics = fit(cfg)
        checkpoint = torch.load(Path(cfg.work_dir) / "last.pt", map_location="cpu", weights_only=True)
        trunk = {k.removeprefix("backbone."): v for k, v in checkpoint["model"].items()
                 if k.startswith("backbone.")}
        provenance = {"base": base, "epochs": epochs, "images": cfg.data.synthetic.num_train, "seed": seed,
                      "steps": int(checkpoint["state"]["step"]),
                      "seconds": round(time.perf_counter() - start, 1),
                      "val_AP": float(metrics.get("AP", 0.0)), "config": OmegaConf.to_yaml(cfg)}
        save_atomic({"trunk": trunk, "backbone": backbone, "pretrain": provenance}, path)
        print(f"pretrained trunk written to {path} ({provenance['seconds']:.0f} s, val AP "
              f"{provenance['val_AP']:.3f})", flush=True)
        return path


def _pretrain_config(backbone, epochs, data: Path, seed, base, overrides, path) -> DictConfig:
    return load_config(base, [
        f"model.backbone={backbone}", "model.pretrained=null", f"train.epochs={epochs}", f"seed={seed}",
        f"work_dir={path.with_suffix('')}.run", "resume=auto", f"data.synthetic.root={data}",
        f"data.train.ann_file={data / 'train.json'}", f"data.val.ann_file={data / 'val.json'}",
        f"data.train.img_dir={data / 'images'}", f"data.val.img_dir={data / 'images'}", *overrides])


@contextmanager
def _locked(lock: Path):
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
