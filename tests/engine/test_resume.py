"""Never lose a run: exact resume, kill -9 and resume, atomic checkpoints, non-finite handling."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from kpdet.config import load_config
from kpdet.engine import checkpoint as ckpt
from kpdet.engine import runner
from kpdet.engine.train import NonFiniteError
from tests.conftest import ROOT, data_overrides, die_at_epoch

EPOCHS = ["train.epochs=3", "train.max_iters_per_epoch=2", "eval.vis_images=0"]


def config(root, work, *extra):
    return load_config("configs/smoke.yaml", [*data_overrides(root), f"work_dir={work}", *EPOCHS, *extra])


@pytest.fixture(scope="module")
def uninterrupted(tiny_synthetic, tmp_path_factory):
    work = tmp_path_factory.mktemp("full")
    metrics = runner.fit(config(tiny_synthetic, work))
    return torch.load(work / "last.pt", weights_only=True), metrics


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_interrupted_then_resumed_equals_uninterrupted(uninterrupted, tiny_synthetic, tmp_path, monkeypatch):
    undo = die_at_epoch(monkeypatch, 1)  # the run dies after epoch 1's checkpoint
    with pytest.raises(KeyboardInterrupt):
        runner.fit(config(tiny_synthetic, tmp_path))
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["epoch"] == 1
    undo()
    metrics = runner.fit(config(tiny_synthetic, tmp_path, "resume=auto"))
    reference, reference_metrics = uninterrupted
    assert_same_weights(torch.load(tmp_path / "last.pt", weights_only=True)["model"], reference["model"])
    assert metrics == reference_metrics


def test_kill_9_during_training_then_resume(uninterrupted, tiny_synthetic, tmp_path):
    args = [sys.executable, "tools/train.py", "configs/smoke.yaml", *data_overrides(tiny_synthetic),
            f"work_dir={tmp_path}", *EPOCHS, "train.epochs=3", "resume=auto"]
    # the reference run above ran at conftest's 2 torch threads: bitwise equality needs the same here
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (tmp_path / "last.pt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)  # somewhere in epoch 2 (or while writing a checkpoint)
    process.wait()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["epoch"] >= 1
    subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    resumed = torch.load(tmp_path / "last.pt", weights_only=True)
    assert_same_weights(resumed["model"], uninterrupted[0]["model"])
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind after a clean finish


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_atomic({"epoch": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_atomic({"epoch": 2, "w": torch.zeros(3)}, path)
    assert ckpt.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class NanAtSecondCall(torch.nn.Module):
    """Wraps a loss; its second call returns NaN."""

    def __init__(self, loss):
        super().__init__()
        self.loss, self.activation, self.calls = loss, loss.activation, 0

    def forward(self, *args):
        self.calls += 1
        value = self.loss(*args)
        return value * float("nan") if self.calls == 2 else value


def test_nonfinite_loss_stops_naming_step_and_samples(tiny_synthetic, tmp_path, monkeypatch):
    build = runner.builders.build_loss_from_cfg
    monkeypatch.setattr(runner.builders, "build_loss_from_cfg", lambda cfg: NanAtSecondCall(build(cfg)))
    with pytest.raises(NonFiniteError, match=r"non-finite loss at step 1 \(loss nan\); annotation ids of the "
                                             r"batch: \[\d+(, \d+)*\]"):
        runner.fit(config(tiny_synthetic, tmp_path))
    dump = torch.load(tmp_path / "nonfinite_step1.pt", weights_only=True)
    assert dump["batch"]["image"].shape[0] == 8 and "model" in dump


def test_skip_nonfinite_counts_and_continues(tiny_synthetic, tmp_path, monkeypatch):
    build = runner.builders.build_loss_from_cfg
    monkeypatch.setattr(runner.builders, "build_loss_from_cfg", lambda cfg: NanAtSecondCall(build(cfg)))
    runner.fit(config(tiny_synthetic, tmp_path, "train.skip_nonfinite=true"))
    state = torch.load(tmp_path / "last.pt", weights_only=True)["state"]
    assert state["skipped_nonfinite"] == 1 and state["step"] == 3 * 2 - 1


def test_checkpoint_interval_writes_last_pt_every_n_epochs_and_at_the_end(tiny_synthetic, tmp_path,
                                                                           monkeypatch):
    written = []
    original = ckpt.save_atomic  # last.pt goes through checkpoint.BackgroundWriter's thread

    def record(state, path, **kwargs):
        if path.name == "last.pt":
            written.append(state["state"]["epoch"])
        original(state, path, **kwargs)

    monkeypatch.setattr(ckpt, "save_atomic", record)
    runner.fit(config(tiny_synthetic, tmp_path, "train.checkpoint_interval=2"))
    assert written == [2, 3]  # epoch 2 by the interval, epoch 3 because it is the last
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["epoch"] == 3


def test_checkpoint_interval_below_one_is_refused(tiny_synthetic, tmp_path):
    from kpdet.config import ConfigError

    with pytest.raises(ConfigError, match="train.checkpoint_interval must be >= 1"):
        config(tiny_synthetic, tmp_path, "train.checkpoint_interval=0")
