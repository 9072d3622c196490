"""last.pt written off the critical path: a snapshot at submit time, atomic, errors not lost."""
import pytest
import torch

from kpdet.engine.checkpoint import BackgroundWriter, CheckpointWriteError


def test_the_file_holds_the_state_at_submit_time(tmp_path):
    weights = torch.zeros(1000)
    writer = BackgroundWriter()
    state = {"model": {"w": weights}, "state": {"epoch": 1}, "rng": [weights[:2]]}
    writer.submit(state, tmp_path / "last.pt")
    weights += 1.0  # the next optimizer step, possibly before the thread has written anything
    writer.wait()
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert torch.equal(saved["model"]["w"], torch.zeros(1000)) and saved["state"] == {"epoch": 1}
    assert torch.equal(saved["rng"][0], torch.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_a_failed_write_is_raised_in_the_training_thread(tmp_path):
    writer = BackgroundWriter()
    writer.submit({"w": torch.ones(2)}, tmp_path / "missing_folder" / "last.pt")
    with pytest.raises(CheckpointWriteError, match="missing_folder"):
        writer.wait()
    writer.wait()  # raised once
