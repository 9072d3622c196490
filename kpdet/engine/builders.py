"""Config -> objects. The only place that reads the config tree; constructors take plain arguments."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, DistributedSampler

from kpdet.codecs import CODECS, build_codec
from kpdet.data import build_dataset
from kpdet.data.targets import WithHeatmapTargets
from kpdet.losses import LOSSES, build_loss
from kpdet.losses.ordinal import XYLoss
from kpdet.models import SIGMOID_PRIOR_BIAS, build_model, head_target_kind, output_stride


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but CUDA is not available (use device=auto or device=cpu)")
    return torch.device(name)


def prepare_data(cfg: DictConfig) -> None:
    """Generate the synthetic dataset when the config asks for it and its files are missing."""
    synthetic = cfg.data.synthetic
    root = Path(synthetic.root).resolve()
    wanted = [Path(s.ann_file).resolve() for s in (cfg.data.train, cfg.data.val) if s.ann_file]
    if synthetic.generate and any(root in p.parents and not p.exists() for p in wanted):
        from kpdet.data.synthetic import ensure_synthetic

        print(f"generating the synthetic dataset under {root} (seed {synthetic.seed}) ...", flush=True)
        ensure_synthetic(root, num_train=synthetic.num_train, num_val=synthetic.num_val, seed=synthetic.seed)


def build_split(cfg: DictConfig, split: str, train: bool, codec=None):
    """The dataset of data.<split> (test falls back to val); with `codec`, samples carry heatmaps."""
    split_cfg = cfg.data[split]
    if split == "test" and not split_cfg.ann_file:
        split_cfg = cfg.data.val
    if not split_cfg.ann_file:
        raise ValueError(f"data.{split}.ann_file is not set")
    dataset = build_dataset(split_cfg, cfg.data, tuple(cfg.model.input_size), train)
    return dataset if codec is None else WithHeatmapTargets(dataset, codec)


def device_targets(cfg: DictConfig, device: torch.device) -> bool:
    """Render heatmaps in the training step on the device (default with CUDA) or in the loader."""
    flag = cfg.train.device_targets
    return device.type == "cuda" if flag is None else bool(flag)


def build_loader(dataset, batch_size: int, num_workers: int, train: bool, seed: int,
                 world_size: int = 1, rank: int = 0, persistent_workers: bool = False) -> DataLoader:
    """Shuffled by a DistributedSampler (also for one process) so that each epoch's order
    depends only on (seed, epoch): call `loader.sampler.set_epoch(epoch)`. Evaluation shards
    are padded to equal size by the sampler; the evaluator drops repeated annotation ids."""
    sampler = DistributedSampler(dataset, world_size, rank, shuffle=train, seed=seed, drop_last=train)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        drop_last=train, pin_memory=torch.cuda.is_available(), worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=persistent_workers and num_workers > 0,
    )


def seed_worker(worker_id: int) -> None:
    """NumPy and Python RNGs of a loader worker follow torch's per-worker seed."""
    import random

    import numpy as np

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def head_kind(cfg: DictConfig) -> str:
    """"heatmap" or "ordinal": the kind of targets, codec and loss that model.head trains with."""
    try:
        return head_target_kind(cfg.model.head)
    except KeyError as error:
        raise ValueError(f"model.head={cfg.model.head!r}: {error.args[0]}") from None


def build_loss_from_cfg(cfg: DictConfig):
    """The configured loss, which must suit model.head: a heatmap loss for `heatmap`; a loss over
    bins (target_kind "ordinal") for `ordinal_xy`, summed over the x and y logits (XYLoss)."""
    loss = build_loss(OmegaConf.to_container(cfg.loss, resolve=True))
    kind, wanted = getattr(loss, "target_kind", "heatmap"), head_kind(cfg)
    if kind != wanted:
        fitting = [n for n in LOSSES.names() if getattr(LOSSES.get(n), "target_kind", "heatmap") == wanted]
        raise ValueError(f"loss.type={cfg.loss.type!r} takes {kind} targets, but "
                         f"model.head={cfg.model.head!r} trains with {wanted} targets; use one of: "
                         f"{', '.join(fitting)}")
    return XYLoss(loss) if kind == "ordinal" else loss


def build_codec_from_cfg(cfg: DictConfig):
    """The configured codec, which must suit model.head (heatmap codecs; ordinal_xy for ordinal_xy)."""
    width, height = cfg.model.input_size
    spec = OmegaConf.to_container(cfg.codec, resolve=True)
    kind, wanted = getattr(CODECS.get(spec["type"]), "target_kind", "heatmap"), head_kind(cfg)
    if kind != wanted:
        fitting = [n for n in CODECS.names() if getattr(CODECS.get(n), "target_kind", "heatmap") == wanted]
        raise ValueError(f"codec.type={spec['type']!r} makes {kind} targets, but "
                         f"model.head={cfg.model.head!r} trains with {wanted} targets; use one of: "
                         f"{', '.join(fitting)}")
    if kind == "ordinal":
        return build_codec(spec, input_size=(width, height), target=_ordinal_target(cfg))
    stride = output_stride(cfg.model.num_deconv)
    return build_codec(spec, input_size=(width, height), heatmap_size=(width // stride, height // stride),
                       **_focal_codec_params(cfg))


def _ordinal_target(cfg: DictConfig) -> str:
    """The loss's target_form picks the ordinal codec's targets: "index" -> bin indices,
    "distribution" -> Gaussian labels (codec.sigma); codec.target overrides."""
    form = getattr(LOSSES.get(cfg.loss.type), "target_form", "index")
    return "index" if form == "index" else "gaussian"


def _focal_codec_params(cfg: DictConfig) -> dict:
    """distance_aware_focal needs exactly one 1.0 per visible keypoint (contract)."""
    return {"one_positive": True} if LOSSES.canonical(cfg.loss.type) == "distance_aware_focal" else {}


def build_model_from_cfg(cfg: DictConfig, num_keypoints: int, activation: str):
    m = cfg.model
    final_bias = m.final_bias
    if final_bias is None:
        final_bias = SIGMOID_PRIOR_BIAS if activation == "sigmoid" else 0.0
    head_params = {}
    if head_kind(cfg) == "ordinal":
        head_params = {"input_size": tuple(m.input_size), "bins": build_codec_from_cfg(cfg).num_bins}
    return build_model(m.backbone, num_keypoints, m.pretrained, m.head_channels, m.num_deconv, final_bias,
                       m.head_conv, m.head_init_std, m.head, **head_params)


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
