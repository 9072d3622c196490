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


@pytest.mark.parametrize("backbone", ["resnet18", "hrnet_w18_small"])
def test_two_process_ddp_matches_single_process_evaluation(backbone, tiny_synthetic, tmp_path):
    args = ["-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
            "tools/train.py",
            "configs/smoke.yaml", *data_overrides(tiny_synthetic), f"work_dir={tmp_path}",
            "train.epochs=1", "train.max_iters_per_epoch=2", "train.batch_size=4",
            "eval.vis_images=1", f"model.backbone={backbone}"]
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


def test_two_process_ddp_bottom_up_pose_matches_single_process_evaluation(dumbbells, tmp_path):
    """Bottom-up pose under torchrun: every instance found on each rank's half of the images is
    gathered (each image once) into one OKS AP, the same as one process finds; panels on rank 0."""
    from tests.engine.test_bottom_up_resume import TASKS, overrides

    args = ["-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
            "tools/train.py", TASKS["pose"][0],
            *overrides("pose", dumbbells, tmp_path, "train.epochs=1", "data.num_workers=0")]
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    ddp_metrics = json.loads((tmp_path / "metrics.json").read_text())
    # one step in, the centres are found (every figure matched) but far off: EPE, over all 8 images'
    # matches, is what must agree (AP 0 at this point)
    assert ddp_metrics["matched_fraction"] > 0.5 and ddp_metrics["EPE"] > 0, ddp_metrics
    run_tool("tools/test.py", str(tmp_path / "config.yaml"), str(tmp_path / "last.pt"),
             "--out", str(tmp_path / "single.json"), "--split", "val", env={"OMP_NUM_THREADS": "1"})
    assert json.loads((tmp_path / "single.json").read_text()) == pytest.approx(ddp_metrics)
    assert done.stdout.count("validation at step") == 1 and len(list((tmp_path / "tb").glob("events.*"))) == 1
