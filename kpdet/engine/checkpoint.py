"""Checkpoints that survive a kill at any moment: temporary file + fsync + atomic rename."""
from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kpdet.build import CheckpointError, eval_weights, load_checkpoint  # noqa: F401  (re-exported)
from kpdet.errors import UserError, free_space


class CheckpointWriteError(UserError, OSError):
    """A checkpoint that could not be written (full disk, unwritable work dir); the previous one is kept."""


def previous_path(path: Path) -> Path:
    """last.pt -> last.prev.pt: the checkpoint before, kept until the next one is safely written."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_atomic(state: dict[str, Any], path: str | Path, keep_previous: bool = False) -> None:
    """Write `state` with torch.save so that `path` is either the old or the new file, never half.

    keep_previous: the old file becomes `previous_path(path)` once the new one is complete.
    An OSError (no space, permission) becomes CheckpointWriteError naming the path and the free space.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, CheckpointWriteError):
            kept = f"the previous {path.name} is kept" if path.exists() else "no checkpoint was written"
            raise CheckpointWriteError(f"cannot write checkpoint {path}: {error.strerror or error} "
                                       f"({free_space(path.parent)}); {kept}") from error
        raise


def find_resumable(work_dir: Path) -> tuple[dict[str, Any], Path] | None:
    """resume=auto: the newest readable of work_dir/last.pt and last.prev.pt (None when neither exists).

    An unreadable file is reported (a warning naming it and why) and the next one is tried; when
    none is readable, CheckpointError names them all.
    """
    last = Path(work_dir) / "last.pt"
    candidates = [p for p in (last, previous_path(last)) if p.exists()]
    problems = []
    for index, path in enumerate(candidates):
        try:
            return load_checkpoint(path), path
        except FileNotFoundError:  # moved aside meanwhile (another rank renamed a corrupt last.pt)
            continue
        except CheckpointError as error:
            problems.append(str(error))
            fallback = f"; falling back to {candidates[index + 1]}" if index + 1 < len(candidates) else ""
            print(f"kpdet: warning: {error}{fallback}", file=sys.stderr, flush=True)
    if problems:
        raise CheckpointError(f"no readable checkpoint to resume from in {work_dir} ("
                              f"{', '.join(p.name for p in candidates)} unreadable); delete "
                              f"{candidates[0]} to start afresh, or set resume=null")
    return None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states in weights_only-loadable types."""
    np_state = np.random.get_state()
    state = {
        "python": _to_lists(random.getstate()),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    keys = state["numpy"]["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy"]["pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value
