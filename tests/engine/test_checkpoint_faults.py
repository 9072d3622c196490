"""Faults while saving and resuming: a full disk or an unwritable work dir keeps the previous checkpoint
and names the path and the free space; an unreadable last.pt falls back to last.prev.pt; a checkpoint of
another model is refused by name."""
import errno
import tempfile

import pytest
import torch

from kpdet.build import CheckpointError, build_model_from_cfg
from kpdet.config import load_config
from kpdet.engine import checkpoint as ckpt
from kpdet.engine import runner
from kpdet.errors import UserError
from tests.conftest import data_overrides

BUDGET = ["train.batch_size=2", "train.max_iters_per_epoch=1", "eval.vis_images=0"]


def config(root, work, *extra):
    return load_config("configs/smoke.yaml", [*data_overrides(root), f"work_dir={work}", *BUDGET, *extra])


def test_full_disk_keeps_last_pt_then_a_truncated_last_pt_falls_back_to_last_prev_pt(tiny_synthetic, tmp_path,
                                                                                     monkeypatch, capsys):
    real_save = torch.save

    def full_at_epoch_2(state, handle):
        if "optimizer" in state and state["state"]["epoch"] == 2:  # last.pt of epoch 2
            handle.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(state, handle)

    monkeypatch.setattr(torch, "save", full_at_epoch_2)
    with pytest.raises(ckpt.CheckpointWriteError) as failed:
        runner.fit(config(tiny_synthetic, tmp_path, "train.epochs=2", "resume=auto"))
    message = str(failed.value)
    assert f"cannot write checkpoint {tmp_path / 'last.pt'}: No space left on device (" in message
    assert " free); the previous last.pt is kept" in message and isinstance(failed.value, UserError)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["epoch"] == 1
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.undo()

    runner.fit(config(tiny_synthetic, tmp_path, "train.epochs=2", "resume=auto"))  # disk freed: finish
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["epoch"] == 2
    assert torch.load(tmp_path / "last.prev.pt", weights_only=True)["state"]["epoch"] == 1

    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[: len(data) // 3])  # a copy cut short, a flaky network disk
    capsys.readouterr()
    runner.fit(config(tiny_synthetic, tmp_path, "train.epochs=3", "resume=auto"))
    out, err = capsys.readouterr()
    assert f"kpdet: warning: checkpoint {tmp_path / 'last.pt'} is unreadable (truncated or corrupt?)" in err
    assert f"falling back to {tmp_path / 'last.prev.pt'}" in err
    assert f"resumed from {tmp_path / 'last.prev.pt'} at epoch 1, step 1" in out
    assert (tmp_path / "last.pt.corrupt").stat().st_size == len(data) // 3  # kept for a look, out of the way
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["step"] == 3


def test_unreadable_last_pt_without_a_readable_predecessor_stops_naming_both(tmp_path, capsys):
    ckpt.save_atomic({"state": 1}, tmp_path / "last.pt", keep_previous=True)
    ckpt.save_atomic({"state": 2}, tmp_path / "last.pt", keep_previous=True)
    assert ckpt.find_resumable(tmp_path)[0] == {"state": 2}
    (tmp_path / "last.pt").write_bytes(b"")
    assert ckpt.find_resumable(tmp_path) == ({"state": 1}, tmp_path / "last.prev.pt")
    (tmp_path / "last.prev.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"no readable checkpoint to resume from in .* \(last.pt, "
                                              r"last.prev.pt unreadable\); delete .*last.pt to start afresh"):
        ckpt.find_resumable(tmp_path)
    assert ckpt.find_resumable(tmp_path / "empty") is None  # nothing to resume: a fresh start


def test_unwritable_work_dir_names_the_path(tmp_path, monkeypatch):
    ckpt.save_atomic({"epoch": 1}, tmp_path / "last.pt")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    expected = rf"cannot write checkpoint {tmp_path / 'last.pt'}: Permission denied \(.* free\); the previous"
    with pytest.raises(ckpt.CheckpointWriteError, match=expected):
        ckpt.save_atomic({"epoch": 2}, tmp_path / "last.pt", keep_previous=True)
    assert ckpt.load_checkpoint(tmp_path / "last.pt") == {"epoch": 1}


def test_resuming_a_checkpoint_of_another_model_is_refused_by_name(tiny_synthetic, tmp_path):
    other = build_model_from_cfg(config(tiny_synthetic, tmp_path, "model.head_channels=16"), 17, "sigmoid")
    torch.save({"model": other.state_dict(), "optimizer": {}, "state": {}}, tmp_path / "last.pt")
    expected = (rf"checkpoint {tmp_path / 'last.pt'} does not fit the model of this run's config .*: "
                r"head.deconv.0.weight: \[512, 16, 4, 4\] in the checkpoint, \[512, 32, 4, 4\] for the")
    with pytest.raises(CheckpointError, match=expected):
        runner.fit(config(tiny_synthetic, tmp_path, "resume=auto"))
