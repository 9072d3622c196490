"""Errors a user can read: `UserError` and `run_cli`, the wrapper around every command's main.

A user error (a config key or value type, an unknown loss or codec, a missing or bad data file,
an unreadable or mismatched checkpoint, a full disk) is printed as one or two lines,
`kpdet: error: ...`, naming the key, file or value and the nearest valid choice, and the
command exits with status 2. Anything else is a bug and keeps its full traceback.

Layer -1 (tests/test_layering.py), below registry, config and keypoints: stdlib only (omegaconf's
exceptions are recognised by name, lazily), so every kpdet module may raise these.
"""
from __future__ import annotations

import difflib
import errno
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
EXIT_USER_ERROR = 2  # argparse's status for a bad command line; ours for any bad input
MAX_LINES = 2
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class UserError(Exception):
    """A mistake in the user's input, shown without a traceback.

    Library errors subclass it together with the builtin their callers catch, e.g.
    `class ConfigError(UserError, ValueError)`; the message is the first argument, unquoted
    (KeyError would quote it).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else Exception.__str__(self)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest of `choices` (difflib ratio >= 0.6), else ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def free_space(path: str | os.PathLike) -> str:
    """Free space on the filesystem of `path` (its nearest existing parent), e.g. '12.3 MB free'."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "free space unknown"
    for unit in ("B", "kB", "MB", "GB"):
        if free < 1000 or unit == "GB":
            return f"{free:.1f} {unit} free" if unit != "B" else f"{free} B free"
        free /= 1000
    return ""


def as_user_error(error: BaseException) -> UserError | None:
    """`error` as a UserError when it is the user's (see the module doc), else None (a bug)."""
    if isinstance(error, UserError):
        return error
    if _is_omegaconf_input_error(error):
        key = getattr(error, "full_key", None)
        message = str(getattr(error, "msg", error)).splitlines()[0]
        return UserError(f"config key {key!r}: {message}" if key else f"config: {message}")
    if isinstance(error, OSError) and error.filename is not None:
        what = os.strerror(error.errno) if error.errno else str(error)
        if isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
            return UserError(f"{error.filename}: {what}")
        if error.errno in _WRITE_ERRNOS:
            return UserError(f"cannot write {error.filename}: {what} ({free_space(error.filename)})")
    return None


def _is_omegaconf_input_error(error: BaseException) -> bool:
    """OmegaConf's errors for an unknown key or a value of the wrong type (merges of user input)."""
    omegaconf = sys.modules.get("omegaconf.errors")
    if omegaconf is None:
        return False
    return isinstance(error, (omegaconf.ConfigKeyError, omegaconf.ValidationError))


def short(message: str) -> str:
    """At most MAX_LINES lines; longer messages say how many lines were left out. An error re-raised
    from a DataLoader worker ('Caught X in DataLoader worker ... Original Traceback ...') is
    shown as its original message, the traceback's last line."""
    if "Original Traceback (most recent call last):" in message:
        last = message.strip().splitlines()[-1]
        message = last.split(": ", 1)[1] if ": " in last and "Error" in last.split(": ", 1)[0] else last
    lines = message.strip().splitlines() or [""]
    if len(lines) <= MAX_LINES:
        return "\n".join(lines)
    return "\n".join(lines[:MAX_LINES - 1] + [f"{lines[MAX_LINES - 1]} (+{len(lines) - MAX_LINES} more "
                                                f"lines with --debug)"])


def debug_requested(debug: bool = False) -> bool:
    return debug or os.environ.get("KPDET_DEBUG", "").strip() not in ("", "0", "false", "no")


def run_cli(fn: Callable[[], T], debug: bool = False) -> T:
    """Call fn(); a user error prints one or two lines to stderr ('kpdet: error: ...', naming key/file/value
    and the nearest valid choice) and exits with status 2, no traceback; debug=True (or KPDET_DEBUG=1)
    re-raises with the traceback. Bugs (other exceptions) propagate with their full traceback."""
    try:
        return fn()
    except Exception as error:
        user = as_user_error(error)
        if user is None or debug_requested(debug):
            raise
        print(f"kpdet: error: {short(str(user))}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USER_ERROR) from None
