"""Preemption: a signal ends training after the current optimizer step with a checkpoint at that step
(mid-epoch), exit status 75; resume=auto then finishes bit-identical to a run never interrupted."""
import os
import signal
import subprocess
import sys

import pytest
import torch

from kpdet.config import load_config
from kpdet.engine import preempt, runner
from kpdet.engine import train as train_module
from tests.conftest import ROOT, data_overrides

# 3 batches of 2 per epoch, 2 epochs: steps 1-3 in epoch 1, 4-6 in epoch 2
BUDGET = ["train.epochs=2", "train.batch_size=2", "train.max_iters_per_epoch=3", "eval.vis_images=0",
          "train.val_interval=2", "train.checkpoint_interval=2",  # fewer 140 MB writes: quicker
          "train.log_interval=1"]


def overrides(root, work, *extra):
    return [*data_overrides(root), f"work_dir={work}", *BUDGET, *extra]


def config(root, work, *extra):
    return load_config("configs/smoke.yaml", overrides(root, work, *extra))


@pytest.fixture(scope="module")
def reference(tiny_synthetic, tmp_path_factory):
    work = tmp_path_factory.mktemp("never_interrupted")
    metrics = runner.fit(config(tiny_synthetic, work))
    return torch.load(work / "last.pt", weights_only=True), metrics


def assert_same_run(work, metrics, reference):
    saved, reference_metrics = reference
    resumed = torch.load(work / "last.pt", weights_only=True)
    for key, value in reference_metrics.items():
        assert metrics[key] == value or (value != value and metrics[key] != metrics[key]), key
    for key, value in saved["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    assert resumed["state"]["step"] == saved["state"]["step"] == 6


def signal_at_step(monkeypatch, signum: int, at: int) -> None:
    """Deliver `signum` to this process in the middle of optimizer step `at` (after the gradients,
    before the weights change): the step must still complete."""
    real, count = train_module._optimizer_step, [0]

    def step_then_signal(*args, **kwargs):
        count[0] += 1
        if count[0] == at:
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "_optimizer_step", step_then_signal)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_mid_epoch_checkpoints_that_step_and_resumes_exactly(signum, reference, tiny_synthetic,
                                                                    tmp_path, monkeypatch, capsys):
    signal_at_step(monkeypatch, signum, at=4)  # epoch 2, its first batch of 3
    with pytest.raises(preempt.Interrupted) as stop:
        runner.fit(config(tiny_synthetic, tmp_path, "resume=auto"))
    assert stop.value.code == preempt.RESUMABLE_EXIT == 75
    name = signal.Signals(signum).name
    assert f"interrupted by {name} at step 4 (in epoch 2 after batch 1)" in str(stop.value)
    state = torch.load(tmp_path / "last.pt", weights_only=True)["state"]
    assert (state["step"], state["epoch"], state["batch"]) == (4, 1, 1)  # not the epoch boundary (step 3)
    assert signal.getsignal(signum) is not None and signal.getsignal(signum) != signal.SIG_IGN
    monkeypatch.undo()
    metrics = runner.fit(config(tiny_synthetic, tmp_path, "resume=auto"))
    assert "resumed from" in capsys.readouterr().out
    assert_same_run(tmp_path, metrics, reference)


def test_sigterm_to_a_training_process_then_resume(reference, tiny_synthetic, tmp_path):
    """tools/train.py as a user runs it, signalled from outside as SLURM does."""
    args = [sys.executable, "tools/train.py", "configs/smoke.yaml", *overrides(tiny_synthetic, tmp_path),
            "resume=auto"]
    # the reference ran at conftest's torch thread count: bitwise equality needs the same here
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    for line in process.stdout:
        if line.startswith("epoch 1 [1/3]"):  # step 1 done: signal during step 2 (3 on a busy machine)
            process.send_signal(signal.SIGTERM)
            break
    out, err = process.communicate(timeout=300)
    assert process.returncode == 75, err[-2000:]
    state = torch.load(tmp_path / "last.pt", weights_only=True)["state"]
    assert state["epoch"] == 0 and state["batch"] == state["step"] in (1, 2, 3), state  # inside epoch 1
    assert f"interrupted by SIGTERM at step {state['step']}" in err and "Traceback" not in err
    metrics = runner.fit(config(tiny_synthetic, tmp_path, "resume=auto"))
    assert_same_run(tmp_path, metrics, reference)


def test_a_second_ctrl_c_stops_at_once():
    before = signal.getsignal(signal.SIGINT)  # Python's default_int_handler; SIG_IGN under `nohup ... &`
    with preempt.StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested() and stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # the handler found on entry is back


def _rank_loop(rank: int, port: int, out: str) -> None:
    """Ranks ask StopRequest after each of their (pretend) steps; only rank 1 is signalled, during step 3."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    with preempt.StopRequest() as stop:
        for step in range(1, 10):
            if rank == 1 and step == 3:
                os.kill(os.getpid(), signal.SIGUSR1)
            if stop.requested():
                break
    with open(f"{out}/rank{rank}", "w") as f:
        f.write(f"{step} {stop.signum}")
    dist.destroy_process_group()


def test_under_torchrun_every_rank_stops_after_the_same_step(tmp_path):
    from tests.engine.test_ddp import free_port

    torch.multiprocessing.spawn(_rank_loop, args=(free_port(), str(tmp_path)), nprocs=2)
    expected = f"3 {int(signal.SIGUSR1)}"  # rank 0 was never signalled, yet stops with rank 1
    assert [(tmp_path / f"rank{r}").read_text() for r in (0, 1)] == [expected, expected]


class Skipping(list):
    """A loader skipping its first `skip` batches; len() is still the whole epoch's (as EpochSampler)."""

    def __init__(self, batches, skip):
        super().__init__(batches)
        self.skip = skip

    def __iter__(self):
        return iter(list.__getitem__(self, slice(self.skip, None)))


def test_with_gradient_accumulation_the_stop_waits_for_the_whole_group_and_resumes_it_exactly():
    """6 batches, accumulate=2: a stop asked for during batch 3 ends after batch 4 (step 2), and the
    rest of the epoch from batch 5 gives the weights of the whole epoch."""
    from torch import nn

    from kpdet.engine.train import StepOptions, train_one_epoch
    from kpdet.losses import build_loss

    torch.manual_seed(0)
    batches = [{"image": torch.rand(2, 3, 4, 4), "heatmaps": torch.rand(2, 2, 4, 4),
                "weights": torch.ones(2, 2), "ann_id": torch.tensor([2 * i, 2 * i + 1])} for i in range(6)]

    def epoch(model, optimizer, loader, start=0, stats=None, stop=None):
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        return train_one_epoch(model, build_loss("mse"), None, loader, optimizer, scheduler, scaler,
                               torch.device("cpu"), 0, start // 2, StepOptions(accumulate=2),
                               progress=False, start=start, stats=stats, stop=stop)

    def fresh():
        torch.manual_seed(1)
        model = nn.Conv2d(3, 2, 1)
        return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    whole, optimizer = fresh()
    assert epoch(whole, optimizer, batches)[0] == 3
    model, optimizer = fresh()
    asked = iter([False, True])  # asked after each optimizer step: the signal came during batch 3
    step, stats = epoch(model, optimizer, batches, stop=lambda: next(asked))
    assert (step, stats["stopped_at"], stats["batches"]) == (2, 4, 2)
    step, stats = epoch(model, optimizer, Skipping(batches, 4), start=4, stats=stats)
    assert (step, stats["stopped_at"], stats["batches"]) == (3, None, 3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), whole.parameters()))


def test_epoch_sampler_skips_the_trained_part_of_one_epoch_only():
    from kpdet.engine.builders import EpochSampler

    sampler = EpochSampler(range(10), num_replicas=1, rank=0, shuffle=True, seed=0)
    sampler.set_epoch(3)
    order = list(sampler)
    sampler.skip(4)
    assert list(sampler) == order[4:] and len(sampler) == 10  # the same permutation, minus 4 trained
    assert list(sampler) == order  # the next pass is whole again
