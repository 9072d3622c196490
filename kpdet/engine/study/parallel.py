"""Run a study's unfinished runs: in this process, over N worker processes, or as submitit jobs.

Whatever runs them, every run writes only under its own work_dir, and the report
reads the results back from those folders (collect.py), so the backends are
interchangeable and a crash loses at most the runs in progress.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from kpdet.engine import preempt
from kpdet.engine.study.run import execute, is_finished
from kpdet.engine.study.spec import Parallel, RunSpec


def pending(runs: list[RunSpec]) -> list[RunSpec]:
    return [run for run in runs if not is_finished(run)]


CORES_PER_RUN = 2  # a run on a GPU: its training process and one loader worker busy
MAX_RUNS_PER_GPU = 8  # small runs each leave a large GPU mostly idle; more would crowd its memory


def plan_workers(parallel: Parallel, gpus: int, cores: int, runs: int | None = None,
                 ) -> tuple[int, int, list[str | None]]:
    """(workers, torch threads per worker, device of each worker).

    With GPUs, by default the runs are packed onto the cards: per GPU, as many as its share of
    the cores gives CORES_PER_RUN each (at most MAX_RUNS_PER_GPU), never more than `runs`; worker i
    sees GPU i mod gpus (CUDA_VISIBLE_DEVICES). `parallel.workers` sets the count instead.
    On the CPU: `workers` runs (default 1), the cores split evenly between them.
    """
    if gpus > 0:
        per_gpu = min(MAX_RUNS_PER_GPU, max(1, cores // gpus // CORES_PER_RUN))
        workers = parallel.workers or max(1, min(gpus * per_gpu, runs or gpus * per_gpu))
        devices = [str(i % gpus) for i in range(workers)]
    else:
        workers, devices = parallel.workers or 1, [None] * (parallel.workers or 1)
    threads = parallel.threads or max(1, cores // workers)
    return workers, threads, devices


def run_all(runs: list[RunSpec], parallel: Parallel, submitit_folder: Path | None = None) -> list[str]:
    """Train every unfinished run per `parallel.backend`; returns the work_dirs run."""
    todo = pending(runs)
    if not todo:
        return []
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    workers, threads, devices = plan_workers(parallel, gpus, os.cpu_count() or 1, len(todo))
    if parallel.backend == "submitit":
        return run_submitit(todo, parallel, submitit_folder or Path("submitit"), workers)
    if parallel.backend == "serial" or workers == 1:
        return [execute(run, parallel.threads) for run in todo]
    return run_processes(todo, threads, devices)


def run_processes(runs: list[RunSpec], threads: int, devices: list[str | None]) -> list[str]:
    """One spawned process per worker; worker i sees only GPU devices[i] (when set) and `threads` threads."""
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for device in devices:
        slots.put(device)
    with ProcessPoolExecutor(len(devices), mp_context=context, initializer=_claim_slot,
                             initargs=(slots, threads)) as pool:
        return list(pool.map(execute_in_worker, runs))


def execute_in_worker(run: RunSpec) -> str:
    """`execute` in a pool worker, which a stop ends: the pool catches every exception of a task
    (preempt.Interrupted included) and hands the worker the next run, so a stopped or orphaned
    worker would go on training. Exit instead (status 75: the run's last.pt is written), and do
    not start a run once the study process is gone."""
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        os._exit(preempt.RESUMABLE_EXIT)
    try:
        return execute(run)
    except preempt.Interrupted:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(preempt.RESUMABLE_EXIT)


def _claim_slot(slots, threads: int) -> None:
    """Worker start: stop with the study process, pin a GPU (before CUDA is initialised) and split
    the CPU threads."""
    stop_with_parent()
    device = slots.get()
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def stop_with_parent(signum: int = signal.SIGTERM) -> bool:
    """Linux: have the kernel send this process `signum` when its parent dies, so that a study killed
    by a scheduler or `kill` does not leave its workers training as orphans: they get SIGTERM, write
    last.pt at the step (preempt.py) and exit, and the rerun study resumes them. False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0


def run_submitit(runs: list[RunSpec], parallel: Parallel, folder: Path, workers: int = 1) -> list[str]:
    """Each run a submitit job (SLURM, or cluster="local" for the local executor); waits for all.
    A preempted or timed-out job writes last.pt at its current step and requeues itself (StudyJob).

    The scheduler queues SLURM jobs; the local executor would start them all at once, so
    locally they go in waves of `workers`.
    """
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=parallel.cluster)
    params = dict(parallel.slurm)
    if executor.cluster == "local":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    if params:
        executor.update_parameters(**params)
    wave = workers if executor.cluster in ("local", "debug") else len(runs)
    done = []
    for start in range(0, len(runs), wave):
        with _importable_kpdet():
            jobs = [executor.submit(StudyJob(), run, parallel.threads) for run in runs[start:start + wave]]
        done += [job.result() for job in jobs]
    return done


class StudyJob:
    """One run as a submitit job that requeues itself when preempted or out of time.

    submitit (SLURM, or its local executor) sends its signal (SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL
    says otherwise) before ending a job; its handler then calls `checkpoint`, requeues the job and
    exits. Here that signal first stops training like SIGTERM (preempt.py: finish the step, write
    last.pt at that step), then goes to submitit's handler; the requeued job resumes from last.pt
    (resume=auto), its `requeues` counting up to run_info.json. Other signals stop without a requeue.
    (submitit only needs a `checkpoint` method, so submitit stays an optional import.)
    """

    def __init__(self, requeues: int = 0):
        self.requeues = requeues

    def __call__(self, run: RunSpec, threads: int | None = None) -> str:
        from kpdet.engine import preempt

        requeue = submitit_signal()
        try:
            return execute(run, threads, self.requeues, (*preempt.STOP_SIGNALS, requeue))
        except preempt.Interrupted as stop:
            if stop.signum == requeue:
                signal.raise_signal(requeue)  # submitit's handler is back: checkpoint, requeue, exit
            raise

    def checkpoint(self, run: RunSpec, threads: int | None = None):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(StudyJob(self.requeues + 1), run, threads)


def submitit_signal() -> int:
    """The signal submitit sends before a preemption or time limit (its SUBMITIT_PREEMPT_SIGNAL)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


@contextmanager
def _importable_kpdet():
    """Jobs inherit the environment at submission: put this kpdet first on their PYTHONPATH, so
    they run the same code as the submitting process (a checkout need not be pip-installed)."""
    import kpdet

    root, before = str(Path(kpdet.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, before) if p)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = before
