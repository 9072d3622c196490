"""User errors: mistakes in the user's input, shown as one or two lines instead of a traceback."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class UserError(Exception):
    """A mistake in the user's input (config, data, checkpoint): one or two lines, exit status 2."""


def run_cli(fn: Callable[[], T], debug: bool = False) -> T:
    """Call fn(); a UserError prints 'kpdet: error: ...' to stderr and exits with status 2 (debug=True
    re-raises it with its traceback). Other exceptions are bugs and propagate with their traceback."""
    try:
        return fn()
    except UserError as error:
        if debug:
            raise
        print(f"kpdet: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
