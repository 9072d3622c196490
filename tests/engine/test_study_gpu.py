"""Study cost reporting: GPU utilisation sampled while a run trains, one line per run in results.md."""
import math
import time

from kpdet.engine.study import run as study_run
from kpdet.engine.study.report import runs_table


def test_gpu_monitor_averages_the_samples_taken_while_the_block_runs(monkeypatch):
    values = iter([0.0] + [40.0, 60.0] * 1000)  # the first call only checks that NVML answers
    monkeypatch.setattr(study_run, "gpu_utilization", lambda: next(values))
    with study_run.GpuMonitor(period=0.01) as gpu:
        while len(gpu.samples) < 4:
            time.sleep(0.005)
    count = len(gpu.samples)
    time.sleep(0.05)
    assert len(gpu.samples) == count  # stopped with the block
    assert gpu.samples[:4] == [40.0, 60.0, 40.0, 60.0] and 40.0 <= gpu.mean() <= 60.0


def test_gpu_monitor_is_blank_without_cuda_or_nvml(monkeypatch):
    monkeypatch.setattr(study_run, "gpu_utilization", lambda: None)
    with study_run.GpuMonitor(period=0.01) as gpu:
        time.sleep(0.03)
    assert gpu.mean() is None


def test_runs_table_has_one_line_per_run_with_a_blank_utilisation_on_the_cpu():
    rows = [{"loss": "mse", "seed": 0, "wall_s": 12.34, "images_per_s": 101.25, "gpu_util": 37.4},
            {"loss": "daf", "seed": 1, "wall_s": 20.0, "images_per_s": 88.0, "gpu_util": math.nan}]
    lines = runs_table(rows).splitlines()
    assert lines[2] == "| mse | 0 | 12.3 | 101.2 | 37 |"
    assert lines[3] == "| daf | 1 | 20.0 | 88.0 |  |"
