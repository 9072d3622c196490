"""Two CPU processes (gloo) under torchrun train, and their gathered evaluation equals one process's."""
import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, data_overrides, run_tool


@pytest.mark.skipif(shutil.which("torchrun") is None and sys.platform != "linux", reason="needs torchrun")
def test_two_process_ddp_matches_single_process_evaluation(tiny_synthetic, tmp_path):
    args = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=0", "tools/train.py",
            "configs/smoke.yaml", *data_overrides(tiny_synthetic), f"work_dir={tmp_path}",
            "train.epochs=1", "train.max_iters_per_epoch=2", "train.batch_size=4", "train.sync_bn=true",
            "eval.vis_images=1"]
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    ddp_metrics = json.loads((tmp_path / "metrics.json").read_text())
    # The validation instances are split over 2 ranks and gathered; one process must see the same.
    run_tool("tools/test.py", str(tmp_path / "config.yaml"), str(tmp_path / "last.pt"),
             "--out", str(tmp_path / "single.json"), "--split", "val")
    assert json.loads((tmp_path / "single.json").read_text()) == pytest.approx(ddp_metrics)
    assert done.stdout.count("validation at step") == 1  # only rank 0 reports
