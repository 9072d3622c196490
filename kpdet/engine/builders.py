"""Config -> training objects (data, loaders, optimizer, schedule); with kpdet/build.py (codec, loss,
model) the only places that read the config tree. Constructors take plain arguments."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, DistributedSampler

from kpdet.build import (  # noqa: F401  (re-exported: config -> codec/loss/model lives in kpdet.build)
    build_codec_from_cfg,
    build_loss_from_cfg,
    build_model_from_cfg,
    pipeline_kind,
    resolve_device,
)
from kpdet.config import ConfigError
from kpdet.data import build_dataset
from kpdet.data.coco import DatasetError
from kpdet.data.sampling import SeedsPerSample
from kpdet.data.targets import WithHeatmapTargets


def prepare_data(cfg: DictConfig) -> None:
    """Generate the synthetic dataset when the config asks for it and its files are missing."""
    synthetic = cfg.data.synthetic
    root = Path(synthetic.root).resolve()
    wanted = [Path(s.ann_file).resolve() for s in (cfg.data.train, cfg.data.val) if s.ann_file]
    if synthetic.generate and any(root in p.parents and not p.exists() for p in wanted):
        from kpdet.data.points_synthetic import generate_points
        from kpdet.data.synthetic import ensure_synthetic

        generator = generate_points if synthetic.kind == "points" else None
        print(f"generating the synthetic {synthetic.kind} dataset under {root} (seed {synthetic.seed}) ...",
              flush=True)
        ensure_synthetic(root, generator, num_train=synthetic.num_train, num_val=synthetic.num_val,
                         seed=synthetic.seed)


def build_split(cfg: DictConfig, split: str, train: bool, codec=None):
    """The dataset of data.<split> (test falls back to val); with `codec`, samples carry heatmaps."""
    split_cfg = cfg.data[split]
    if split == "test" and not split_cfg.ann_file:
        split_cfg = cfg.data.val
    if not split_cfg.ann_file:
        raise ConfigError(f"data.{split}.ann_file is not set (give data.{split}.ann_file=PATH)")
    _check_exists(split_cfg.ann_file, f"data.{split}.ann_file")
    kind = pipeline_kind(cfg)
    if kind != "top_down" and (cfg.data.cache != "none" or cfg.data.augment_on != "loader"):
        raise ConfigError(f"data.cache={cfg.data.cache} and data.augment_on={cfg.data.augment_on}: the "
                          "decoded-image cache and device augmentation work with data.mode=top_down only "
                          "(set data.cache=none data.augment_on=loader)")
    if kind != "top_down":  # whole images (kpdet/data/bottom_up.py); point and pose maps: in the step
        from kpdet.data.bottom_up import build_whole_image_dataset

        try:
            dataset = build_whole_image_dataset(split_cfg, cfg.data, tuple(cfg.model.input_size), train)
        except DatasetError as error:
            raise DatasetError(f"data.{split}: {error}") from error
        return dataset if codec is None or kind in ("points", "pose") else WithHeatmapTargets(dataset, codec)
    attribute, permutation = cfg.model.attribute, None
    if attribute is not None:
        attribute, permutation = (attribute.field, attribute.classes), attribute.class_permutation
    try:
        dataset = build_dataset(split_cfg, cfg.data, tuple(cfg.model.input_size), train, attribute,
                                list(permutation) if permutation is not None else None)
    except DatasetError as error:
        raise DatasetError(f"data.{split}: {error}") from error
    return dataset if codec is None else WithHeatmapTargets(dataset, codec)


def _check_exists(path: str, key: str) -> None:
    """A missing annotation file names the config key to set; a shipped config's path into the
    repository's ../shared/data says that it only exists in a checkout."""
    if Path(path).is_file():
        return
    hint = ""
    if "shared/data" in Path(path).as_posix():
        hint = (f"\nthis config reads ../shared/data beside a kpdet checkout; elsewhere set {key}=FILE "
                f"{key.replace('ann_file', 'img_dir')}=DIR")
    raise DatasetError(f"{key}: annotation file not found: {path} (relative to {Path.cwd()}){hint}")


def device_targets(cfg: DictConfig, device: torch.device) -> bool:
    """Render heatmaps in the training step on the device (default with CUDA, always with
    data.augment_on=device: the loader's keypoints are then in canvas px) or in the loader."""
    flag = cfg.train.device_targets
    if cfg.data.augment_on == "device":
        if flag is False:
            raise ValueError("data.augment_on=device needs train.device_targets=true (or null): the "
                             "keypoints reach their crop position only in the training step")
        return True
    return device.type == "cuda" if flag is None else bool(flag)


class EpochSampler(DistributedSampler):
    """DistributedSampler whose next pass may start part-way, for a mid-epoch resume: `skip(n)`
    leaves out the first n indices of this rank's next epoch order (len() stays a whole epoch's)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._skip = 0

    def skip(self, count: int) -> None:
        self._skip = count

    def __iter__(self):
        skip, self._skip = self._skip, 0
        return itertools.islice(super().__iter__(), skip, None)


def build_loader(dataset, batch_size: int, num_workers: int, train: bool, seed: int,
                 world_size: int = 1, rank: int = 0, persistent_workers: bool = False) -> DataLoader:
    """Shuffled by a DistributedSampler (also for one process) so that each epoch's order
    depends only on (seed, epoch): call `loader.sampler.set_epoch(epoch)`. With loader workers,
    training samples also get their random draws from (seed, epoch, index). Evaluation
    shards are padded to equal size by the sampler; the evaluator drops repeated annotation ids.
    Training drops the last partial batch unless it is the only one (see `check_split_sizes`)."""
    persistent = persistent_workers and num_workers > 0
    # A worker's random state depends on what it drew before: persistent workers keep it across
    # epochs, and after a mid-epoch resume (EpochSampler.skip) fresh workers get other batches than
    # they did. Seed each sample from (seed, epoch, index) instead, so that a resumed run sees the
    # same augmentations (data/sampling.py). Without workers, the per-epoch reseed and the RNG state
    # in the checkpoint do it.
    seeded = train and num_workers > 0 and getattr(dataset, "seeded_index", False)
    kind = SeededEpochSampler if seeded else EpochSampler
    sampler = kind(dataset, world_size, rank, shuffle=train, seed=seed, drop_last=train)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        drop_last=train and len(sampler) >= batch_size, pin_memory=torch.cuda.is_available(),
        worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(seed),
        persistent_workers=persistent, multiprocessing_context=_worker_start(dataset, num_workers),
    )


class SeededEpochSampler(SeedsPerSample, EpochSampler):
    """EpochSampler yielding (index, per-sample seed) pairs (data/sampling.py)."""


def _worker_start(dataset, num_workers: int):
    """"fork" for a dataset with a decoded-image cache (data.cache=ram): forked workers share its
    buffer, where spawn or forkserver (Python 3.14's Linux default) would pickle a copy into each
    worker. None (the default) otherwise, or where fork does not exist."""
    import multiprocessing

    cached = getattr(dataset, "image_cache", None) is not None
    fork = "fork" in multiprocessing.get_all_start_methods()
    return "fork" if cached and fork and num_workers > 0 else None


def check_split_sizes(cfg: DictConfig, train_set, val_set, world_size: int = 1, verbose: bool = True) -> None:
    """No silent no-op runs: an empty split after filtering, or fewer training samples than
    processes, stops with the sizes; a training set smaller than one batch trains on the partial
    batch (one step per epoch) and says so."""
    for split, dataset in (("train", train_set), ("val", val_set)):
        if len(dataset) == 0:
            raise DatasetError(f"data.{split} ({cfg.data[split].ann_file}) has no samples after filtering "
                               f"(instances of the category with a labelled keypoint, not crowd)")
    per_rank, batch = len(train_set) // world_size, cfg.train.batch_size
    if per_rank == 0:
        raise DatasetError(f"data.train has {len(train_set)} samples for {world_size} processes: "
                           f"at least one each is needed")
    if per_rank < batch and verbose:
        print(f"note: data.train has {per_rank} samples{' per process' if world_size > 1 else ''}, fewer "
              f"than train.batch_size={batch}: keeping the partial batch (one step of {per_rank} per epoch) "
              f"instead of dropping it and training nothing", flush=True)


def seed_worker(worker_id: int) -> None:
    """NumPy and Python RNGs of a loader worker follow torch's per-worker seed."""
    import random

    import numpy as np

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def prepare_model(cfg: DictConfig, model: torch.nn.Module, device: torch.device, world_size: int):
    """Move to the device and apply SyncBN, channels_last, EMA, DDP and torch.compile per the config.
    -> (model for the training step, EMA AveragedModel or None)."""
    t = cfg.train
    if t.sync_bn and world_size > 1:
        if device.type != "cuda":
            raise ValueError("train.sync_bn=true needs CUDA (PyTorch's SyncBatchNorm is GPU-only)")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device, memory_format=torch.channels_last if t.channels_last else torch.preserve_format)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = t.cudnn_benchmark
    ema = None
    if t.ema_decay is not None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t.ema_decay), use_buffers=True)
    if world_size > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if t.compile:
        model = torch.compile(model)
    return model, ema


def build_optimizer(cfg: DictConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.train.optimizer]
    return kind(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)


def build_scheduler(cfg: DictConfig, optimizer, iters_per_epoch: int):
    """Per-iteration LambdaLR: linear warm-up from 0.001 * lr, then cosine to 0 or steps at epochs."""
    t = cfg.train
    total = max(1, t.epochs * iters_per_epoch)
    warmup = min(t.warmup_iters, total - 1)
    milestones = [e * iters_per_epoch for e in t.lr_steps]

    def factor(it: int) -> float:
        if it < warmup:
            return 0.001 + (1 - 0.001) * it / warmup
        if t.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (it - warmup) / max(1, total - warmup)))
        return t.lr_gamma ** sum(it >= m for m in milestones)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
