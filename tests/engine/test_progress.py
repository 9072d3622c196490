"""Progress output of train_one_epoch: a bar on a terminal, plain periodic lines in a log file."""
import re

import pytest
import torch
from torch import nn

from kpdet.engine import train
from kpdet.engine.train import StepOptions, train_one_epoch
from kpdet.losses import build_loss

LINE = re.compile(r"epoch 3 \[(\d+)/5\] step (\d+) loss (\d+\.\d{4}) lr 1\.00e-02 (\d+\.\d) img/s")


def run_epoch(log=None):
    """5 batches of 2 ready-made 4x4 heatmaps (no codec needed), log_interval 2, from global step 10."""
    torch.manual_seed(0)
    model = nn.Conv2d(3, 2, 1)
    batches = [{"image": torch.rand(2, 3, 4, 4), "heatmaps": torch.rand(2, 2, 4, 4),
                "weights": torch.ones(2, 2), "ann_id": torch.tensor([2 * i, 2 * i + 1])} for i in range(5)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return train_one_epoch(model, build_loss("mse"), None, batches, optimizer, scheduler, scaler,
                           torch.device("cpu"), 2, 10, StepOptions(log_interval=2), log=log)


def test_redirected_output_gets_plain_lines_at_the_log_interval(capsys, monkeypatch):
    monkeypatch.setattr(train, "on_terminal", lambda: False)
    logged = []
    step, stats = run_epoch(log=lambda s, scalars: logged.append((s, scalars["loss/total"])))
    out, err = capsys.readouterr()
    assert step == 15 and "\r" not in out + err and err == ""  # no bar redraws anywhere
    lines = [LINE.fullmatch(line) for line in out.splitlines()]
    assert all(lines) and len(lines) == 4
    # first batch (step 11), then steps 12 and 14 (multiples of log_interval 2), then the last (15)
    assert [(int(m[1]), int(m[2])) for m in lines] == [(1, 11), (2, 12), (4, 14), (5, 15)]
    # TensorBoard gets the same cadence minus the forced last line; printed losses are its losses
    assert [s for s, _ in logged] == [11, 12, 14]
    assert [float(m[3]) for m in lines[:3]] == pytest.approx([v for _, v in logged], abs=5e-5)


def test_terminal_output_keeps_the_bar_and_prints_no_lines(capsys, monkeypatch):
    monkeypatch.setattr(train, "on_terminal", lambda: True)
    run_epoch()
    out, err = capsys.readouterr()
    assert out == "" and "epoch 3:" in err and "0/5" in err  # tqdm draws on stderr (its first draw)


def test_on_terminal_needs_both_streams_to_be_terminals(capsys):
    assert train.on_terminal() is False  # capsys: stdout and stderr are in-memory files
