"""The codec registry; a new codec is one file with `@register_codec(name)` plus an import in __init__."""
from __future__ import annotations

from ..registry import Registry

CODECS = Registry("codec")
register_codec = CODECS.register
