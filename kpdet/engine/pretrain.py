"""Pretraining without a hub: a trunk learned on the embedded synthetic set, built once and cached.

`model.pretrained: synthetic` (or `synthetic:<epochs>`) in any config asks for the trunk of
`model.backbone` trained on the synthetic multi-figure set (`synthetic/focal` as shipped, for
<epochs> epochs, default DEFAULT_EPOCHS). `resolve_pretrained` turns the name into the path of
the cached trunk file, pretraining first when the cache lacks it; the model builder then loads
that file like any other `model.pretrained` file. The cache is `model.pretrained_cache`, else
$KPDET_CACHE, else ~/.cache/kpdet; its synthetic data is generated there once.

A trunk file is {"trunk": the backbone's state dict, "backbone": name, "pretrain": provenance}.
"""
from __future__ import annotations

import copy
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from kpdet.config import ConfigError, load_config
from kpdet.engine.checkpoint import save_atomic
from kpdet.errors import UserError

SYNTHETIC = "synthetic"
DEFAULT_EPOCHS = 1  # the demo's budget (139 steps), measured to halve openfield MSE's error (issue 25)
BASE = "synthetic/focal"
FIGURES_PER_IMAGE = 2.23  # the synthetic set: 4,462 figures (top-down crops) in 2,000 images
CROPS_PER_S_CPU = 12  # the slower 2-core CPU machines (README); for the first-use time estimate


def synthetic_epochs(pretrained: str | None) -> int | None:
    """`synthetic` -> DEFAULT_EPOCHS, `synthetic:5` -> 5, anything else -> None."""
    if pretrained is None or pretrained.split(":")[0] != SYNTHETIC:
        return None
    _, _, epochs = pretrained.partition(":")
    if not epochs:
        return DEFAULT_EPOCHS
    if not epochs.isdigit() or int(epochs) < 1:
        raise ConfigError(f"model.pretrained={pretrained!r}: the budget after 'synthetic:' is a number of "
                          "epochs >= 1, e.g. synthetic:5")
    return int(epochs)


def cache_root(configured: str | None = None) -> Path:
    return Path(configured or os.environ.get("KPDET_CACHE") or Path.home() / ".cache" / "kpdet").expanduser()


def trunk_file(cache: Path, backbone: str, epochs: int, seed: int = 0, base: str = BASE) -> Path:
    return cache / "pretrained" / f"{base.replace('/', '-')}_{backbone}_e{epochs}_s{seed}.pt"


def synthetic_trunk(cfg: DictConfig) -> Path | None:
    """The cached trunk file that model.pretrained=synthetic[:N] stands for (built or not); None for
    any other model.pretrained."""
    epochs = synthetic_epochs(cfg.model.pretrained)
    if epochs is None:
        return None
    return trunk_file(cache_root(cfg.model.pretrained_cache), cfg.model.backbone, epochs)


def resolve_pretrained(cfg: DictConfig) -> DictConfig:
    """`cfg` with model.pretrained=synthetic[:N] replaced by the cached trunk's path (built if missing)."""
    path = synthetic_trunk(cfg)
    if path is None:
        return cfg
    epochs = synthetic_epochs(cfg.model.pretrained)
    if not path.is_file():
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: one process builds it, beforehand
            raise UserError(f"model.pretrained={cfg.model.pretrained}: {path} is not built yet; build it "
                            f"once before torchrun: kpdet pretrain --backbone {cfg.model.backbone} "
                            f"--epochs {epochs}")
        pretrain(cfg.model.backbone, epochs, cache_root(cfg.model.pretrained_cache))
    cfg = copy.deepcopy(cfg)
    cfg.model.pretrained = str(path)
    return cfg


def pretrain(backbone: str, epochs: int, cache: Path, seed: int = 0, base: str = BASE,
             overrides: tuple[str, ...] = ()) -> Path:
    """Train `base` with `backbone` for `epochs` on the synthetic set under `cache` and write the trunk
    file; an existing file is reused. A lock lets concurrent runs (a study) build it once."""
    path = trunk_file(cache, backbone, epochs, seed, base)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_suffix(".lock")):
        if path.is_file():
            return path
        cfg = _pretrain_config(backbone, epochs, cache, seed, base, overrides, path)
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
        provenance = {"base": base, "epochs": epochs, "seed": seed, "steps": int(checkpoint["state"]["step"]),
                      "seconds": round(time.perf_counter() - start, 1),
                      "val_AP": float(metrics.get("AP", 0.0)), "config": OmegaConf.to_yaml(cfg)}
        save_atomic({"trunk": trunk, "backbone": backbone, "pretrain": provenance}, path)
        print(f"pretrained trunk written to {path} ({provenance['seconds']:.0f} s, val AP "
              f"{provenance['val_AP']:.3f})", flush=True)
        return path


def _pretrain_config(backbone, epochs, cache, seed, base, overrides, path) -> DictConfig:
    data = cache / "synthetic"
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
