"""Name -> constructor registries: register with a decorator, build from a name or a dict."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kpdet.errors import UserError, did_you_mean


class UnknownNameError(UserError, KeyError):
    """An unknown registry name; the message lists the known names and the closest one."""


class UnknownParameterError(UserError, TypeError):
    """A parameter a loss or codec does not take (say `loss.alpah=3`)."""

    @classmethod
    def of(cls, what: str, unknown: str, known: Iterable[str]) -> UnknownParameterError:
        known = list(known)
        return cls(f"{what} has no parameter {unknown!r}{did_you_mean(unknown, known)}; its parameters: "
                   f"{', '.join(known) or 'none'}")


class Registry:
    """A named table of constructors (losses, codecs, models, ...).

    >>> LOSSES = Registry("loss")
    >>> @LOSSES.register("distance_aware_focal", aliases=("daf",))
    ... class DistanceAwareFocalLoss: ...
    >>> LOSSES.build({"type": "daf", "alpha": 2})
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, aliases: Iterable[str] = ()) -> Callable:
        def decorator(obj: Callable[..., Any]) -> Callable[..., Any]:
            for key in (name, *aliases):
                if key in self._entries or key in self._aliases:
                    raise KeyError(f"{self.kind} {key!r} is already registered")
            self._entries[name] = obj
            for alias in aliases:
                self._aliases[alias] = name
            return obj

        return decorator

    def canonical(self, name: str) -> str:
        """The registered name for `name` or one of its aliases."""
        name = self._aliases.get(name, name)
        if name not in self._entries:
            known = self.names(with_aliases=True)
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(known)}"
                                   f"{did_you_mean(name, known)}")
        return name

    def get(self, name: str) -> Callable[..., Any]:
        return self._entries[self.canonical(name)]

    def names(self, with_aliases: bool = False) -> list[str]:
        names = list(self._entries)
        if with_aliases:
            names += list(self._aliases)
        return sorted(names)

    def build(self, spec: str | Mapping[str, Any], **extra: Any) -> Any:
        """Build from `"name"` or `{"type": name, **params}`; `extra` fills params not in spec."""
        if isinstance(spec, str):
            spec = {"type": spec}
        params = dict(spec)
        if "type" not in params:
            raise UnknownNameError(f"{self.kind} spec needs a 'type' key, got {dict(spec)}")
        name = params.pop("type")
        return self.get(name)(**{**extra, **params})

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases
