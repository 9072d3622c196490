"""A study through submitit's local executor: a job signalled as SLURM does before preemption writes its
run's checkpoint at the current step, requeues itself and resumes there; the study completes, every
run trained once, and the results name the requeued run."""
import csv
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kpdet.engine.compare import run_study
from kpdet.engine.study.parallel import submitit_signal
from kpdet.engine.study.spec import Parallel, Study, make_loss
from tests.conftest import data_overrides

BUDGET = ["train.epochs=1", "train.batch_size=2", "train.max_iters_per_epoch=4", "eval.vis_images=0",
          "train.log_interval=1"]


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def signal_first_job_in_training(folder: Path, signum: int, deadline: float) -> Path:
    """Wait until a job's log shows its first optimizer step, then signal that job's task process
    (the local executor's controller, whose pid is the job id, starts it). -> the job's log."""
    while time.time() < deadline:
        for log in sorted(folder.glob("*_0_log.out")):
            if "epoch 1 [1/4]" in log.read_text():
                (task,) = children(int(log.name.split("_")[0]))  # python -m submitit.core._submit
                os.kill(task, signum)
                return log
        time.sleep(0.05)
    raise TimeoutError("no job reached its first step")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the job's process through /proc")
def test_a_preempted_job_requeues_and_resumes_at_its_step(tiny_synthetic, tmp_path):
    pytest.importorskip("submitit")
    study = Study(base="configs/smoke.yaml", work_dir=str(tmp_path / "study"),
                  losses=[make_loss("mse", "test"), make_loss("focal", "test")], seeds=[0],
                  datasets={"tiny": list(data_overrides(tiny_synthetic))}, overrides=BUDGET, targets={},
                  parallel=Parallel(backend="submitit", cluster="local", workers=2, threads=1))
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("rows", run_study(study)))
    runner.start()
    log = signal_first_job_in_training(tmp_path / "study" / "submitit", submitit_signal(), time.time() + 240)
    runner.join(timeout=300)
    assert "rows" in result, "the study did not complete"
    text, err = log.read_text(), log.with_suffix(".err").read_text()
    assert "kpdet: got SIGUSR2: stopping after this optimizer step" in err and "Requeued job" in text
    assert text.count("[study] training") == 2 and text.count("epoch 1 [1/4]") == 1  # no step redone
    (resumed,) = [line for line in text.splitlines() if line.startswith("resumed from")]
    assert resumed.endswith("of epoch 1") and ", step 0," not in resumed  # mid-epoch, at the signalled step
    rows = {r["loss"]: r for r in result["rows"]}
    signalled = "mse" if "/mse/" in resumed else "focal"
    assert {loss: r["requeues"] for loss, r in rows.items()} == {"mse": 0, "focal": 0, signalled: 1}
    assert all(r["steps"] == 4 for r in rows.values())  # every run finished once, all its steps
    history = Path(rows[signalled]["work_dir"], "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in history] == [4]
    with open(tmp_path / "study" / "results.csv") as f:
        assert sorted(r["requeues"] for r in csv.DictReader(f)) == ["0", "1"]
    report = (tmp_path / "study" / "results.md").read_text()
    assert f"(resumed from their step checkpoints): {signalled} seed 0 (1x)" in report


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_a_study_worker_gets_sigterm_when_the_study_process_dies(tmp_path):
    # parent -> child (calls stop_with_parent, as every process-pool worker does at start, then
    # waits with a SIGTERM handler); the parent dies abruptly: the child must get SIGTERM, not
    # train on as an orphan (what `kill <study pid>` did before)
    ready, got = tmp_path / "ready", tmp_path / "got_sigterm"
    child = textwrap.dedent(f"""
        import pathlib, signal, sys, time
        from kpdet.engine.study.parallel import stop_with_parent
        signal.signal(signal.SIGTERM, lambda *_: (pathlib.Path({str(got)!r}).touch(), sys.exit(0)))
        assert stop_with_parent()
        pathlib.Path({str(ready)!r}).touch()
        time.sleep(60)
        """)
    parent = textwrap.dedent(f"""
        import os, pathlib, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {child!r}])
        while not pathlib.Path({str(ready)!r}).exists():
            time.sleep(0.05)
        os._exit(0)
        """)
    subprocess.run([sys.executable, "-c", parent], check=True, timeout=120)
    deadline = time.monotonic() + 20
    while not got.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got.exists()


def test_a_stopped_or_orphaned_pool_worker_exits_instead_of_taking_the_next_run(monkeypatch):
    # concurrent.futures catches a task's exceptions (SystemExit too) and hands the worker the next
    # task: a worker stopped by a signal, or left behind by a killed study, must exit (status 75)
    from kpdet.engine import preempt
    from kpdet.engine.study import parallel

    exits, started = [], []

    def fake_exit(code):
        exits.append(code)
        raise RuntimeError("exited")

    def stopped(run):
        started.append(run)
        raise preempt.Interrupted(15, "interrupted by SIGTERM")

    monkeypatch.setattr(parallel.os, "_exit", fake_exit)
    monkeypatch.setattr(parallel, "execute", stopped)
    with pytest.raises(RuntimeError, match="exited"):
        parallel.execute_in_worker("run-a")
    assert exits == [75] and started == ["run-a"]

    class DeadParent:
        def is_alive(self):
            return False

    monkeypatch.setattr(parallel.multiprocessing, "parent_process", lambda: DeadParent())
    with pytest.raises(RuntimeError, match="exited"):
        parallel.execute_in_worker("run-b")
    assert exits == [75, 75] and started == ["run-a"]  # run-b never started
    monkeypatch.setattr(parallel.multiprocessing, "parent_process", lambda: None)  # the main process
    monkeypatch.setattr(parallel, "execute", lambda run: f"trained {run}")
    assert parallel.execute_in_worker("run-c") == "trained run-c" and exits == [75, 75]
