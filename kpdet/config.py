"""The config schema and loading: schema defaults, then a YAML file, then `key=value` overrides.

Strict: OmegaConf structured configs reject unknown keys and wrong types, and
the error names the key. `loss` and `codec` are free-form dicts (`type` plus
that loss's or codec's parameters), checked by their constructors.
"""
from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from kpdet.errors import UserError, did_you_mean


@dataclass
class SplitConfig:
    ann_file: str = ""  # COCO keypoints JSON
    img_dir: str = ""  # folder that the JSON's file_name entries are relative to


@dataclass
class AugConfig:
    flip_prob: float = 0.5  # horizontal flip, keypoints swapped by flip pairs
    scale_factor: float = 0.25  # crop scale drawn from [1 - f, 1 + f]
    rotation: float = 30.0  # degrees, drawn from [-r, r]
    rotation_prob: float = 0.6  # share of samples that get a rotation
    shift_factor: float = 0.0  # centre shift, fraction of the box size
    photometric: bool = True  # albumentations colour / blur / noise


@dataclass
class SyntheticConfig:
    generate: bool = False  # write the synthetic dataset under `root` when it is missing
    root: str = "data/synthetic"  # git-ignored folder; train.json, val.json, images/
    seed: int = 0
    num_train: int = 2000  # images
    num_val: int = 200
    kind: str = "pose"  # pose: 17-keypoint figures (synthetic.py) | points: point objects (points_synthetic)


@dataclass
class BottomUpConfig:
    task: str = "single"  # single: one instance per frame | points: point objects | pose: many (bottom_up.py)
    max_instances: int = 128  # points per image kept (padding size); more are counted and dropped
    peak_threshold: float = 0.1  # points: a peak counts when its score exceeds this (before AP's sweep)
    max_peaks: int = 100  # points: top-k peaks per class map
    nms_kernel: int = 3  # points and pose: max-pool window of the peak suppression (odd, heatmap px)
    displacement_weight: float = 1.0  # pose: centre-to-keypoint L1 weight (CenterNet hps), as offset_weight
    snap_fraction: float = 0.3  # pose: snap regressed keypoints to peaks within this share of instance size


@dataclass
class DataConfig:
    train: SplitConfig = field(default_factory=SplitConfig)
    val: SplitConfig = field(default_factory=SplitConfig)
    test: SplitConfig = field(default_factory=SplitConfig)  # defaults to val when empty
    num_workers: int = 2  # DataLoader worker processes
    persistent_workers: bool = True  # keep workers alive between epochs (train and val loaders)
    cache: str = "none"  # none | ram: decode every image once into one buffer shared by the workers
    augment_on: str = "loader"  # loader | device: geometric + photometric augmentation of train batches
    bbox_padding: float = 1.25  # crop = box * padding, then fit to the input aspect ratio
    category_id: int | None = None  # COCO category to use; None = the first with keypoints
    flip_pairs: list[list[int]] | None = None  # 0-based; None = derived from names
    oks_sigmas: list[float] | None = None  # None = COCO's for COCO names, else 0.05 each
    skip_invalid: bool = False  # skip (and count) bad samples instead of failing
    aug: AugConfig = field(default_factory=AugConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    mode: str = "top_down"  # top_down: one crop per instance box | bottom_up: whole images (data.bottom_up)
    bottom_up: BottomUpConfig = field(default_factory=BottomUpConfig)


@dataclass
class AttributeConfig:
    field: str = "occlusion_bin"  # annotation key holding each instance's class, an int in [0, classes)
    classes: int = 4  # ordered classes 0..classes-1
    weight: float = 1.0  # loss = keypoint loss + weight * attribute loss(attribute logits, class)
    loss: str = "squared_emd"  # squared_emd | bin_ce (cross entropy: blind to the class order)
    ground_distance: str = "ordinal"  # squared_emd's: ordinal (|i - j|) | matrix | learned (docs/losses.md)
    matrix: Any = None  # ground_distance=matrix: C x C list of lists, or a .npy/.json file path
    exponent: float = 1.0  # matrix | learned: cost D[i, t]^exponent + bias (Hou et al.)
    bias: float = 0.0  # matrix | learned: added to every class's cost (the reproduction: 0.5)
    warmup_epochs: int = 4  # learned: cross entropy alone for these epochs, then CE + EMD
    balance: float = 3.5  # learned: EMD weight = mean CE / mean EMD / balance at the end of the warm-up
    learned_distance: str = "rank"  # learned: centroid distances -> D: rank (the reproduction) | tree
    centroid_momentum: float = 0.0  # learned: centroids <- m * centroids + (1 - m) * the epoch's mean
    class_permutation: list[int] | None = None  # hide the order: class c of `field` becomes permutation[c]


@dataclass
class ModelConfig:
    backbone: str = "resnet18"  # resnet18|34|50, hrnet_w18_small(_v1), hrnet_w18|32|48, timm/<name>
    # None | imagenet (resnets) | hub (timm/<name>) | synthetic[:epochs] | a weights file or kpdet checkpoint
    pretrained: str | None = None
    pretrained_cache: str | None = None  # synthetic trunks' cache; None: $KPDET_CACHE or ~/.cache/kpdet
    input_size: list[int] = field(default_factory=lambda: [192, 256])  # [W, H] network input
    head_channels: int = 256  # SimpleBaseline deconvolution width
    num_deconv: int = 3  # heatmap stride 32 / 2^num_deconv (3: 4; HRNet's stride-4 branch: no deconv)
    final_bias: float | None = None  # last conv bias at init; None: logit(loss prior) if sigmoid, else 0
    head_conv: int = 0  # >0: a 3x3 conv with this many channels + ReLU before the last 1x1 (CenterNet)
    head_init_std: float = 0.001  # std of the normal init of the head's convolution weights
    head: str = "heatmap"  # heatmap | ordinal_xy (x/y-bin logits, SimCC): kpdet.models.HEADS
    attribute: AttributeConfig | None = None  # a per-instance ordinal attribute head beside the keypoints
    offset: bool = False  # the offset head: 2 channels (dx, dy) per heatmap, L1 loss (kpdet.codecs.offset)
    # loss = heatmap loss + offset_weight * L1 of the offsets: 1 for losses normalised per positive
    # (distance_aware_focal, CenterNet's); ~0.002 for per-pixel means (mse: README "Offset head")
    offset_weight: float = 1.0
    offset_radius: int = 0  # offsets trained within this many heatmap px of the nearest pixel (0: that pixel)


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 0.0
    scheduler: str = "cosine"  # cosine | step
    warmup_iters: int = 100  # linear warm-up from 0.001 * lr
    lr_steps: list[int] = field(default_factory=lambda: [170, 200])  # epochs, for scheduler=step
    lr_gamma: float = 0.1
    grad_clip: float | None = None  # max gradient norm
    amp: str = "none"  # none | bf16 | fp16 (CUDA autocast)
    val_interval: int = 1  # epochs between validations
    val_every_steps: int | None = None  # also validate every N optimizer steps (time-to-accuracy curves)
    checkpoint_interval: int = 1  # epochs between last.pt writes (and the last epoch); resume loses < N
    log_interval: int = 20  # iterations between scalar logs
    max_iters_per_epoch: int | None = None  # cap, for smoke tests
    accumulate: int = 1  # batches per optimizer step (gradient accumulation)
    ema_decay: float | None = None  # e.g. 0.999: keep an EMA of the weights and evaluate it
    skip_nonfinite: bool = False  # skip (and count) steps with a non-finite loss/gradient instead of stopping
    device_targets: bool | None = None  # render heatmaps in the step on the device; None = on with CUDA
    channels_last: bool = False  # NHWC memory format (faster convolutions on recent GPUs)
    compile: bool = False  # torch.compile the model
    cudnn_benchmark: bool = True  # let cuDNN pick the fastest kernels (fixed input size)
    sync_bn: bool = False  # SyncBatchNorm across DDP processes


@dataclass
class EvalConfig:
    batch_size: int = 64
    flip_test: bool = False  # average with the mirrored input's maps (bottom-up pose: displacements too)
    vis_images: int = 8  # crops (top-down) or whole images (bottom-up) in TensorBoard panels; 0 = none
    image_interval: int = 1  # log the image panels every N-th validation (smaller event files)
    best_metric: str = "AP"  # metrics.json key that picks best.pt (higher is better)
    nme_norm: str = "none"  # none | interocular | box: add NME, AUC@0.08/0.1, FR@0.08/0.1 (landmarks)
    nme_pair: list[int] | None = None  # outer eye corner indices for interocular; None = 300W/WFLW defaults
    point_thresholds: list[float] = field(default_factory=lambda: [3.0, 6.0])  # px: precision/recall/F1/AP@D


@dataclass
class Config:
    work_dir: str = "work_dirs/run"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    resume: str | None = None  # auto | path to a checkpoint | None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: dict[str, Any] = field(default_factory=lambda: {"type": "distance_aware_focal"})
    codec: dict[str, Any] = field(default_factory=lambda: {"type": "msra", "sigma": 2.0})
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


class ConfigError(UserError, ValueError):
    """A config file or override that does not fit the schema."""


class ConfigNotFoundError(ConfigError, FileNotFoundError):
    """A config named on the command line that is neither a file nor a shipped config."""


SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"


def shipped_configs() -> list[str]:
    """Names of the configs shipped in the package (kpdet/configs), e.g. 'synthetic/focal'."""
    return sorted(p.relative_to(SHIPPED_CONFIGS).with_suffix("").as_posix()
                  for p in SHIPPED_CONFIGS.rglob("*.yaml"))


def find_config(name: str | Path) -> Path:
    """A YAML path as given, else a shipped config named without a path: 'synthetic/focal',
    'synthetic/focal.yaml' or 'configs/synthetic/focal.yaml' (the repository path, outside a checkout)."""
    path = Path(name)
    if path.is_file():
        return path
    relative = path.as_posix().removesuffix(".yaml").removeprefix("configs/")
    shipped = SHIPPED_CONFIGS / f"{relative}.yaml"
    if shipped.is_file():
        return shipped
    close = difflib.get_close_matches(relative, shipped_configs(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `kpdet configs` lists the shipped ones"
    raise ConfigNotFoundError(f"config {str(name)!r} is neither a file nor a shipped config{hint}")


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Schema defaults, merged with the YAML at `path`, then the `key=value` overrides."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
    cfg = OmegaConf.structured(Config)
    source = path
    try:
        if path is not None:
            source = find_config(path) if isinstance(path, (str, Path)) else path  # or an open stream
            cfg = OmegaConf.merge(cfg, OmegaConf.load(source))
        source = "the overrides"
        dotlist = OmegaConf.from_dotlist(list(overrides))  # values typed as YAML: 3, 1e-3, [1, 2], null
        cfg = OmegaConf.merge(cfg, dotlist)
        for key in ("loss", "codec"):
            # A new loss.type/codec.type starts afresh: the file's parameters belonged to the old one.
            if key in dotlist and "type" in dotlist[key]:
                cfg[key] = dotlist[key]
    except OmegaConfBaseException as error:
        message = str(error.msg).splitlines()[0]
        if isinstance(error, ConfigKeyError) and "Did you mean" not in message:
            message += did_you_mean(error.full_key, schema_keys())
        raise ConfigError(f"config error in {source}: key {error.full_key!r}: {message}") from None
    _check(cfg)
    return cfg


def schema_keys() -> list[str]:
    """Every dotted key of the schema ('train.epochs', 'data.train.ann_file', ...)."""
    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"
    return list(walk(OmegaConf.to_container(OmegaConf.structured(Config)), ""))


# kpdet.models.BACKBONES (tests/test_config.py checks that they agree), and any timm/<name>
BACKBONES = ("resnet18", "resnet34", "resnet50", "hrnet_w18_small", "hrnet_w18_small_v1", "hrnet_w18",
             "hrnet_w32", "hrnet_w48")
_CHOICES = {
    "device": ("auto", "cpu", "cuda"),
    "train.optimizer": ("adam", "adamw"),
    "train.scheduler": ("cosine", "step"),
    "train.amp": ("none", "bf16", "fp16"),
    "eval.nme_norm": ("none", "interocular", "box"),
    "data.cache": ("none", "ram"),
    "data.augment_on": ("loader", "device"),
    "data.mode": ("top_down", "bottom_up"),
    "data.synthetic.kind": ("pose", "points"),
    "data.bottom_up.task": ("single", "points", "pose"),
}


def _check(cfg: DictConfig) -> None:
    for key, choices in _CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in choices:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")
    backbone = cfg.model.backbone
    if backbone not in BACKBONES and not (backbone.startswith("timm/") and len(backbone) > len("timm/")):
        raise ConfigError(f"model.backbone={backbone!r} is not one of {', '.join(BACKBONES)} or timm/<name>")
    for key in ("loss", "codec"):
        if "type" not in cfg[key]:
            raise ConfigError(f"{key} needs a 'type' key (for example {key}.type=...)")
    attribute = cfg.model.attribute
    if attribute is not None:
        _check_attribute(attribute)
    for key in ("train.val_interval", "train.checkpoint_interval"):
        if OmegaConf.select(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1 (epochs), got {OmegaConf.select(cfg, key)}")
    if len(cfg.model.input_size) != 2:
        raise ConfigError(f"model.input_size must be [W, H], got {list(cfg.model.input_size)}")
    if any(side % 32 for side in cfg.model.input_size):
        raise ConfigError(f"model.input_size sides must be multiples of 32 (the backbone stride), "
                          f"got {list(cfg.model.input_size)}")


def _check_attribute(attribute: DictConfig) -> None:
    if attribute.classes < 2:
        raise ConfigError(f"model.attribute.classes must be >= 2, got {attribute.classes}")
    if attribute.ground_distance not in ("ordinal", "matrix", "learned"):
        raise ConfigError(f"model.attribute.ground_distance={attribute.ground_distance!r} is not one of "
                          "ordinal, matrix, learned")
    if attribute.ground_distance != "ordinal" and attribute.loss not in ("squared_emd", "emd2"):
        raise ConfigError(f"model.attribute.ground_distance={attribute.ground_distance!r} is squared_emd's, "
                          f"but model.attribute.loss={attribute.loss!r}")
    if (attribute.matrix is not None) != (attribute.ground_distance == "matrix"):
        raise ConfigError("model.attribute.matrix is set exactly when model.attribute.ground_distance=matrix "
                          f"(got ground_distance={attribute.ground_distance!r}, matrix={attribute.matrix!r})")
    if attribute.learned_distance not in ("rank", "tree"):
        raise ConfigError(f"model.attribute.learned_distance={attribute.learned_distance!r} is not one of "
                          "rank, tree")
    if not 0.0 <= attribute.centroid_momentum < 1.0:
        raise ConfigError(f"model.attribute.centroid_momentum={attribute.centroid_momentum} is not in [0, 1)")
    permutation = attribute.class_permutation
    if permutation is not None and sorted(permutation) != list(range(attribute.classes)):
        raise ConfigError(f"model.attribute.class_permutation={list(permutation)} is not a permutation of "
                          f"0..{attribute.classes - 1} (model.attribute.classes={attribute.classes})")


def save_config(cfg: DictConfig, path: str | Path) -> None:
    OmegaConf.save(cfg, path)
