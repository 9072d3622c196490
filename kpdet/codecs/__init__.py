"""Codecs: keypoints <-> heatmaps (see `base.py` for the coordinate convention) or x/y bins
(`ordinal_xy.py`, for the ordinal_xy head), batched in torch."""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from kpdet.registry import UnknownNameError, UnknownParameterError

from . import msra, ordinal_xy, udp  # noqa: F401  (registers the codecs)
from .base import HeatmapCodec
from .flip import flip_heatmaps
from .gaussian import cornernet_radius, sigma_from_radius
from .ordinal_xy import OrdinalXYCodec
from .peaks import find_peaks
from .registry import CODECS, register_codec

__all__ = [
    "CODECS", "HeatmapCodec", "OrdinalXYCodec", "build_codec", "cornernet_radius", "find_peaks",
    "flip_heatmaps", "list_codecs", "register_codec", "sigma_from_radius",
]


def list_codecs() -> list[str]:
    return CODECS.names()


def codec_params(cls: type) -> list[str]:
    """Constructor parameter names of a codec class, including those of its base classes."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names:
                names.append(p.name)
    return names


def build_codec(spec: str | Mapping[str, Any], **extra: Any) -> HeatmapCodec:
    """Build from "name" or {"type": name, **params}; `extra` supplies params the spec lacks.

    >>> build_codec({"type": "udp", "sigma": 2}, input_size=(192, 256), heatmap_size=(48, 64))
    An unknown parameter is a TypeError that names it and lists the known ones.
    """
    params = {"type": spec} if isinstance(spec, str) else dict(spec)
    if "type" not in params:
        raise UnknownNameError(f"codec spec needs a 'type' key; known codecs: {', '.join(list_codecs())}")
    cls = CODECS.get(params.pop("type"))
    known = codec_params(cls)
    unknown = [k for k in {**extra, **params} if k not in known]
    if unknown:
        raise UnknownParameterError.of(f"codec {cls.__name__}", unknown[0], known)
    return cls(**{**extra, **params})
