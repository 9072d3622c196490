"""Stop at an optimizer-step boundary on a signal: cluster preemption, time limits, Ctrl-C.

SLURM sends SIGTERM (or the signal named with `--signal`, often SIGUSR1; submitit's is SIGUSR2)
and kills the job a little later. While `StopRequest` is active those signals only set a flag;
the trainer asks `requested()` after every optimizer step, writes a checkpoint at that step and
raises `Interrupted`, a SystemExit with status RESUMABLE_EXIT: "interrupted, resumable; run
again with resume=auto". A second Ctrl-C stops at once (the last checkpoint stays valid).
"""
from __future__ import annotations

import os
import signal
import sys
import threading

from kpdet.engine import distributed

RESUMABLE_EXIT = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure, run again to continue
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class Interrupted(SystemExit):
    """Training stopped by `signum` after a checkpoint was written; exit status RESUMABLE_EXIT."""

    def __init__(self, signum: int, message: str):
        super().__init__(RESUMABLE_EXIT)
        self.signum, self.message = signum, message

    def __str__(self) -> str:
        return self.message


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _stderr_fd() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an in-memory stream (io.UnsupportedOperation)
        return 2


class StopRequest:
    """While entered (main thread only), `signals` set a flag instead of ending the process."""

    def __init__(self, signals=STOP_SIGNALS):
        self.signals, self.signum, self._previous = tuple(signals), None, {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt("second interrupt: stopping without a checkpoint")
        if self.signum is None:
            self.signum = signum
            # os.write, not print: a handler may run in the middle of another print to stderr
            os.write(_stderr_fd(), f"kpdet: got {signal_name(signum)}: stopping after this optimizer "
                     f"step and writing a checkpoint (Ctrl-C again to stop at once)\n".encode())

    def requested(self) -> bool:
        """Whether any process got a signal; under torchrun an all-reduce (max) of the signal number,
        so every rank stops after the same step and learns which signal it was."""
        signum = distributed.all_max(self.signum or 0)
        if signum and self.signum is None:
            self.signum = signum
        return bool(signum)
