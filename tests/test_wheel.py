"""The built wheel works outside the repository: `kpdet` on PATH, shipped configs inside, and a tiny
train -> test -> infer -> export run in an empty folder.

The wheel is built offline (no build isolation) and installed without dependencies into a new venv
that sees this environment's packages (torch, ...) through a path file but not its editable kpdet,
so the code that runs is the wheel's. `.ci/run`-style full installs (dependencies resolved by pip):
`make release-check`.
"""
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

TINY = ["train.epochs=1", "train.max_iters_per_epoch=2", "train.batch_size=4", "model.input_size=[64,64]",
        "model.head_channels=32", "data.num_workers=0", "data.synthetic.num_train=8",
        "data.synthetic.num_val=4", "device=cpu", "eval.batch_size=8", "eval.vis_images=0"]


def run(*args, cwd, timeout=300) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but the wheel's kpdet
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, ROOT,
        cwd=out)
    return next(out.glob("kpdet-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """bin/ of a new venv holding the wheel; dependencies come from this environment's site-packages."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", venv, cwd=venv)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "-q", wheel, cwd=venv)
    return venv / "bin"


def test_the_wheel_holds_the_package_configs_and_the_command(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "kpdet" / "configs").rglob("*.yaml")}
    assert shipped and shipped <= set(names)
    assert "kpdet/cli/__init__.py" in names and not any(n.startswith(("tests/", "tools/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "kpdet = kpdet.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: torch")]
    assert requires and not any("<" in line for line in requires)  # no caps on what users install


def test_kpdet_runs_from_an_empty_folder(installed, tmp_path):
    kpdet = installed / "kpdet"
    where = run(installed / "python", "-c", "import kpdet; print(kpdet.__file__)", cwd=tmp_path)
    assert where.startswith(str(installed.parent))  # the wheel's code, not the checkout's
    assert "compare" in run(kpdet, "--help", cwd=tmp_path)
    out = run(kpdet, "train", "synthetic/focal", "work_dir=run", *TINY, cwd=tmp_path)
    assert "final metrics" in out and (tmp_path / "data" / "synthetic" / "train.json").is_file()
    work = tmp_path / "run"
    metrics = json.loads((work / "metrics.json").read_text())
    run(kpdet, "test", work / "config.yaml", work / "last.pt", "--out", "m.json", cwd=tmp_path)
    assert json.loads((tmp_path / "m.json").read_text()) == pytest.approx(metrics)
    image = sorted((tmp_path / "data" / "synthetic" / "images" / "val").iterdir())[0]
    run(kpdet, "infer", work / "config.yaml", work / "last.pt", image, "--out", "pred", cwd=tmp_path)
    assert len(json.loads((tmp_path / "pred" / "results.json").read_text())) >= 1
    run(kpdet, "export", work / "last.pt", "--out", "model.onnx", cwd=tmp_path)
    assert (tmp_path / "model.onnx").stat().st_size > 1e6
