"""Config and checkpoint -> the objects inference needs: codec, loss (for its activation), model, spec.

Nothing here touches data loaders, so `kpdet.Predictor` can build a model from a
checkpoint without the training engine; `engine/builders.py` re-exports these.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from kpdet.codecs import CODECS, build_codec
from kpdet.codecs.offset import OffsetCodec
from kpdet.config import ConfigError
from kpdet.errors import UserError
from kpdet.keypoints import KeypointSpec
from kpdet.losses import LOSSES, build_loss
from kpdet.losses.displacement import WithDisplacementLoss
from kpdet.losses.offset import WithOffsetLoss
from kpdet.losses.ordinal import WithAttributeLoss, XYLoss
from kpdet.models import build_model, head_target_kind, output_stride


class DeviceError(UserError, RuntimeError):
    """device=cuda on a machine without CUDA."""


def resolve_device(name: str | torch.device) -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without CUDA raises."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device={name} but CUDA is not available (use device=auto or device=cpu)")
    return torch.device(name)


def head_kind(cfg: DictConfig) -> str:
    """"heatmap" or "ordinal": the kind of targets, codec and loss that model.head trains with."""
    try:
        kind = head_target_kind(cfg.model.head)
    except KeyError as error:
        raise ConfigError(f"model.head={cfg.model.head!r}: {error.args[0]}") from None
    if cfg.model.offset and kind != "heatmap":
        raise ConfigError(f"model.offset=true adds offsets to heatmaps, but model.head={cfg.model.head!r} "
                         f"gives {kind} outputs; use model.head=heatmap or model.offset=false")
    return kind


def pipeline_kind(cfg: DictConfig) -> str:
    """The one place that picks the data pipeline: "top_down" (one crop per instance box),
    "whole_frame" (data.mode=bottom_up, task single: one instance per whole image, highest peak
    per channel), "points" (task points: many point objects per class map) or "pose" (task pose:
    many instances, CenterNet's centre map + displacements, kpdet.codecs.pose).
    Bottom-up needs heatmaps: a head or codec of another kind is an error naming both."""
    if cfg.data.mode == "top_down":
        return "top_down"
    kind = head_kind(cfg)
    codec_kind = getattr(CODECS.get(cfg.codec.type), "target_kind", "heatmap")
    if kind != "heatmap" or codec_kind != "heatmap":
        raise ConfigError(f"data.mode={cfg.data.mode!r} decodes whole-image heatmaps, but model.head="
                         f"{cfg.model.head!r} gives {kind} outputs and codec.type={cfg.codec.type!r} makes "
                         f"{codec_kind} targets; use model.head=heatmap with a heatmap codec, or "
                         "data.mode=top_down")
    return {"single": "whole_frame", "points": "points", "pose": "pose"}[cfg.data.bottom_up.task]


def pose_decoding(cfg: DictConfig) -> dict:
    """kpdet.codecs.pose.decode_pose's keyword arguments from data.bottom_up."""
    bu = cfg.data.bottom_up
    return {"max_instances": bu.max_instances, "threshold": bu.peak_threshold, "kernel": bu.nms_kernel,
            "snap_fraction": bu.snap_fraction, "max_peaks": bu.max_peaks}


def build_loss_from_cfg(cfg: DictConfig):
    """The configured loss, which must suit model.head: a heatmap loss for `heatmap`; a loss over
    bins (target_kind "ordinal") for `ordinal_xy`, summed over the x and y logits (XYLoss).
    With model.attribute, plus weight * squared EMD of the attribute head (WithAttributeLoss)."""
    loss = build_loss(OmegaConf.to_container(cfg.loss, resolve=True))
    kind, wanted = getattr(loss, "target_kind", "heatmap"), head_kind(cfg)
    if kind != wanted:
        fitting = [n for n in LOSSES.names() if getattr(LOSSES.get(n), "target_kind", "heatmap") == wanted]
        raise ConfigError(f"loss.type={cfg.loss.type!r} takes {kind} targets, but "
                         f"model.head={cfg.model.head!r} trains with {wanted} targets; use one of: "
                         f"{', '.join(fitting)}")
    if getattr(loss, "learner", None) is not None:
        raise ValueError("loss.ground_distance='learned' learns from the features of a classifier: use it "
                         "for the attribute head (model.attribute.ground_distance=learned)")
    loss = XYLoss(loss) if kind == "ordinal" else loss
    if cfg.model.offset:  # + L1 on the offset head (kpdet.codecs.offset)
        loss = WithOffsetLoss(loss, cfg.model.offset_weight)
    if cfg.data.mode == "bottom_up" and cfg.data.bottom_up.task == "pose":  # + centre-to-keypoint L1
        loss = WithDisplacementLoss(loss, cfg.data.bottom_up.displacement_weight)
    attribute = cfg.model.attribute
    if attribute is None:
        return loss
    return WithAttributeLoss(loss, attribute.weight, build_attribute_loss(attribute))


def build_attribute_loss(attribute: DictConfig):
    """model.attribute's loss over its classes: `loss` (squared_emd | bin_ce) with, for squared_emd,
    `ground_distance` (ordinal | matrix | learned) and its parameters."""
    name = LOSSES.canonical(attribute.loss) if attribute.loss in LOSSES else attribute.loss
    if name not in ("squared_emd", "bin_ce"):
        raise ValueError(f"model.attribute.loss={attribute.loss!r} is not one of squared_emd, bin_ce")
    if name == "bin_ce":
        return build_loss("bin_ce")
    a = OmegaConf.to_container(attribute, resolve=True)
    params = {"ground_distance": a["ground_distance"], "classes": a["classes"]}
    if a["ground_distance"] != "ordinal":
        params.update(exponent=a["exponent"], bias=a["bias"])
    if a["ground_distance"] == "matrix":
        params["matrix"] = a["matrix"]
    if a["ground_distance"] == "learned":
        params.update(warmup_epochs=a["warmup_epochs"], balance=a["balance"],
                      learned_distance=a["learned_distance"], centroid_momentum=a["centroid_momentum"])
    try:
        return build_loss({"type": "squared_emd", **params})
    except (ValueError, FileNotFoundError) as error:
        raise type(error)(f"model.attribute: {error}") from None


def build_codec_from_cfg(cfg: DictConfig):
    """The configured codec, which must suit model.head (heatmap codecs; ordinal_xy for ordinal_xy)."""
    width, height = cfg.model.input_size
    spec = OmegaConf.to_container(cfg.codec, resolve=True)
    kind, wanted = getattr(CODECS.get(spec["type"]), "target_kind", "heatmap"), head_kind(cfg)
    if kind != wanted:
        fitting = [n for n in CODECS.names() if getattr(CODECS.get(n), "target_kind", "heatmap") == wanted]
        raise ConfigError(f"codec.type={spec['type']!r} makes {kind} targets, but "
                         f"model.head={cfg.model.head!r} trains with {wanted} targets; use one of: "
                         f"{', '.join(fitting)}")
    if kind == "ordinal":
        return build_codec(spec, input_size=(width, height), target=_ordinal_target(cfg))
    stride = output_stride(cfg.model.num_deconv)
    codec = build_codec(spec, input_size=(width, height), heatmap_size=(width // stride, height // stride),
                        **_focal_codec_params(cfg))
    return OffsetCodec(codec, cfg.model.offset_radius) if cfg.model.offset else codec


def _ordinal_target(cfg: DictConfig) -> str:
    """The loss's target_form picks the ordinal codec's targets: "index" -> bin indices,
    "distribution" -> Gaussian labels (codec.sigma); codec.target overrides."""
    form = getattr(LOSSES.get(cfg.loss.type), "target_form", "index")
    return "index" if form == "index" else "gaussian"


def _focal_codec_params(cfg: DictConfig) -> dict:
    """distance_aware_focal needs exactly one 1.0 per visible keypoint (contract)."""
    return {"one_positive": True} if LOSSES.canonical(cfg.loss.type) == "distance_aware_focal" else {}


def prior_bias(prior: float) -> float:
    """Final bias whose sigmoid is `prior`: -log((1 - prior) / prior) (0.1 -> -2.197, 0.01 -> -4.595)."""
    return -math.log((1.0 - prior) / prior)


def build_model_from_cfg(cfg: DictConfig, num_keypoints: int, activation: str, pretrained: bool = True):
    """The configured network; pretrained=False skips `model.pretrained` (weights come from a checkpoint).
    The ordinal_xy head gets its bins from the codec."""
    m = cfg.model
    final_bias = m.final_bias
    if final_bias is None:
        final_bias = prior_bias(LOSSES.get(cfg.loss.type).prior) if activation == "sigmoid" else 0.0
    head_params = {"offset": True} if m.offset else {}
    if pipeline_kind(cfg) == "pose":  # K keypoint maps + the centre map, and 2K displacements
        num_keypoints, head_params["displacements"] = num_keypoints + 1, 2 * num_keypoints
    if head_kind(cfg) == "ordinal":
        head_params = {"input_size": tuple(m.input_size), "bins": build_codec_from_cfg(cfg).num_bins}
    attribute_classes = m.attribute.classes if m.attribute is not None else None
    return build_model(m.backbone, num_keypoints, m.pretrained if pretrained else None, m.head_channels,
                       m.num_deconv, final_bias, m.head_conv, m.head_init_std, m.head, attribute_classes,
                       **head_params)


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be read (truncated, corrupt, not a torch file) or does not fit the model."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """A checkpoint path that does not exist."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load on the CPU with `weights_only=True` (tensors, numbers, strings, containers only).
    A missing file raises CheckpointNotFoundError, an unreadable one CheckpointError; both name it."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist") from None
    except Exception as error:  # torch.load: RuntimeError (zip), EOFError, UnpicklingError, KeyError ...
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt?): "
                              f"{type(error).__name__}: {reason[:160]}") from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path} is not a kpdet checkpoint (a {type(checkpoint).__name__}, "
                              f"not a dict)")
    return checkpoint


def load_weights(model: torch.nn.Module, weights: dict, checkpoint_path,
                 config_name: str = "the config") -> None:
    """load_state_dict, but a checkpoint of another head, keypoint count or backbone says so
    (CheckpointError naming the file and the first differing weights)."""
    own = model.state_dict()
    problems = [f"{k}: {list(v.shape)} in the checkpoint, {list(own[k].shape)} for the config"
                for k, v in weights.items() if k in own and own[k].shape != v.shape]
    problems += [f"{k}: only in the checkpoint" for k in weights if k not in own]
    problems += [f"{k}: only in the config's model" for k in own if k not in weights]
    if problems:
        raise CheckpointError(f"checkpoint {checkpoint_path} does not fit the model of {config_name} "
                              f"(another head, keypoint count or backbone?): " + "; ".join(problems[:4])
                              + (f"; and {len(problems) - 4} more" if len(problems) > 4 else ""))
    model.load_state_dict(weights)


def eval_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights to evaluate: the EMA's when the run kept one, else the model's."""
    ema = checkpoint.get("ema")
    if not ema:
        return checkpoint["model"]
    return {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")}


def spec_from_checkpoint(checkpoint: dict) -> KeypointSpec:
    meta = checkpoint["keypoints"]
    return KeypointSpec(tuple(meta["names"]), tuple(tuple(p) for p in meta["skeleton"]),
                        tuple(meta["flip_index"]), tuple(meta["sigmas"]))


def spec_to_checkpoint(spec: KeypointSpec) -> dict:
    return {"names": list(spec.names), "skeleton": [list(p) for p in spec.skeleton],
            "flip_index": list(spec.flip_index), "sigmas": list(spec.sigmas)}
