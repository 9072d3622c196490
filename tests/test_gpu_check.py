"""benchmarks/gpu_check.sh: on a machine without CUDA it says so, writes nothing and exits 0."""
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script measures for minutes")
@pytest.mark.parametrize("part", ["throughput", "bottom_up"])
def test_without_cuda_it_says_so_and_exits_0(tmp_path, part):
    report = tmp_path / "report.md"
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", str(report)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable, "GPU_CHECK_PART": part})
    assert done.returncode == 0, done.stderr
    assert "no CUDA device visible" in done.stdout and "exiting 0" in done.stdout
    assert not report.exists()
