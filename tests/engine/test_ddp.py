"""Two CPU processes (gloo) under torchrun train, and their gathered evaluation equals one process's."""
import json
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT, data_overrides, run_tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_matches_single_process_evaluation(tiny_synthetic, tmp_path):
    args = ["-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
            "tools/train.py",
            "configs/smoke.yaml", *data_overrides(tiny_synthetic), f"work_dir={tmp_path}",
            "train.epochs=1", "train.max_iters_per_epoch=2", "train.batch_size=4",
            "eval.vis_images=1"]
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    ddp_metrics = json.loads((tmp_path / "metrics.json").read_text())
    # The validation instances are split over 2 ranks and gathered; one process must see the same.
    # torchrun runs each rank with one thread; so does this process, for the same float sums
    # (a model two steps old has near-flat heatmaps whose argmax turns on the last bit).
    run_tool("tools/test.py", str(tmp_path / "config.yaml"), str(tmp_path / "last.pt"),
             "--out", str(tmp_path / "single.json"), "--split", "val", env={"OMP_NUM_THREADS": "1"})
    assert json.loads((tmp_path / "single.json").read_text()) == pytest.approx(ddp_metrics)
    assert done.stdout.count("validation at step") == 1  # only rank 0 reports
