"""Bottom-up runs never lose their place either: a point-object and a multi-instance pose run,
stopped by SIGTERM mid-epoch or killed at an epoch boundary, resume (resume=auto) to the weights and
the validation history of a run never interrupted, bit for bit, with augmentation on and with a
persistent loader worker (the shipped configs' setting)."""
import signal

import pytest
import torch

from kpdet.config import load_config
from kpdet.engine import preempt, runner
from tests.conftest import die_at_epoch
from tests.engine.test_preempt import signal_at_step

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # much quicker on the loaded 2-core machine

# 2 epochs of 2 steps (batches of 4), validation and last.pt after each epoch
BUDGET = ["train.epochs=2", "train.max_iters_per_epoch=2", "train.batch_size=4", "train.val_interval=1",
          "train.checkpoint_interval=1", "train.warmup_iters=2", "eval.vis_images=2", "device=cpu",
          "data.synthetic.generate=false", "model.head_channels=16", "model.input_size=[64,64]"]
TASKS = {
    # augmentation as shipped (flips, rotations up to 180 degrees, scale), photometric off there
    "points": ("configs/points/focal.yaml", "tiny_points", ["data.bottom_up.max_instances=16"]),
    "pose": ("configs/bottom_up/synthetic_focal.yaml", "dumbbells",
             ["data.oks_sigmas=[0.1,0.1]", "data.bottom_up.max_instances=4", "data.aug.photometric=true"]),
}


def overrides(task: str, root, work, *extra) -> list[str]:
    """The tiny run's key=value overrides of the task's config (TASKS)."""
    ann = "train.json"  # the tiny sets validate on their training images
    data = [f"data.{s}.{key}={root / name}" for s in ("train", "val")
            for key, name in (("ann_file", ann), ("img_dir", "images"))]
    return [*data, f"work_dir={work}", *BUDGET, *TASKS[task][2], *extra]


def config(task: str, root, work, *extra):
    return load_config(TASKS[task][0], overrides(task, root, work, *extra))


def finished(work) -> tuple[dict, str]:
    return torch.load(work / "last.pt", weights_only=True)["model"], (work / "history.jsonl").read_text()


def assert_same_run(work, reference_work):
    weights, history = finished(work)
    reference_weights, reference_history = finished(reference_work)
    assert weights.keys() == reference_weights.keys()
    for key, value in reference_weights.items():
        assert torch.equal(weights[key], value), key
    assert history == reference_history and history.count("\n") == 2  # one validation per epoch


# workers: 0 (main process), 1 persistent (the shipped setting) or "1 fresh" (fresh every epoch)
@pytest.mark.parametrize("task,workers,stop", [("points", "1", "sigterm"), ("pose", "0", "sigterm"),
                                               ("pose", "1 fresh", "sigterm"), ("pose", "1", "killed")])
def test_a_stopped_bottom_up_run_resumes_bit_identical(task, workers, stop, request, tmp_path, monkeypatch):
    root = request.getfixturevalue(TASKS[task][1])
    loader = [f"data.num_workers={workers[0]}", f"data.persistent_workers={'fresh' not in workers}"]
    runner.fit(config(task, root, tmp_path / "whole", *loader))
    work = tmp_path / "stopped"
    if stop == "sigterm":  # during step 3: epoch 2, after its first batch
        signal_at_step(monkeypatch, signal.SIGTERM, at=3)
        with pytest.raises(preempt.Interrupted):
            runner.fit(config(task, root, work, *loader, "resume=auto"))
        state = torch.load(work / "last.pt", weights_only=True)["state"]
        assert (state["step"], state["epoch"], state["batch"]) == (3, 1, 1)
        monkeypatch.undo()
    else:  # dies as epoch 2 starts, after epoch 1's checkpoint
        undo = die_at_epoch(monkeypatch, 1)
        with pytest.raises(KeyboardInterrupt):
            runner.fit(config(task, root, work, *loader))
        undo()
    runner.fit(config(task, root, work, *loader, "resume=auto"))
    assert_same_run(work, tmp_path / "whole")
