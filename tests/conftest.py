import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(2)


def _holds_tensor(value) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    return isinstance(value, (list, tuple)) and any(_holds_tensor(v) for v in value)


def _approx_of_plain_numbers(expected, *args, **kwargs):
    """pytest.approx that refuses torch tensors as the expected value: pytest 9.2 iterates a 0-d
    tensor there (TypeError), older releases did not. Expected values are Python numbers
    (`.item()`, `.tolist()`); compare tensors with torch.testing.assert_close."""
    if _holds_tensor(expected):
        raise TypeError(f"pytest.approx got a torch.Tensor as the expected value ({expected!r}): pass "
                        "Python floats (.item() / .tolist()) or use torch.testing.assert_close")
    return _plain_approx(expected, *args, **kwargs)


_plain_approx, pytest.approx = pytest.approx, _approx_of_plain_numbers


HAS_TIMM = importlib.util.find_spec("timm") is not None
needs_timm = pytest.mark.skipif(not HAS_TIMM, reason="the timm extra is not installed")


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for the test: small-op models (HRNet runs ~400 small ops per pass) were
    10-40x slower with 2 threads than with 1 on the loaded shared 2-core test machine (0.8-4.3 s
    against 0.1 s per forward + backward, measured under load 7). Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def die_at_epoch(monkeypatch, epoch: int):
    """Make `runner.fit` die (KeyboardInterrupt) as it starts `epoch` (0-based), after the previous
    epoch's checkpoint, as a killed run would; returns the function that undoes it."""
    from kpdet.engine import runner

    original = runner.train_one_epoch

    def dying(*args, **kwargs):
        if args[8] == epoch:  # train_one_epoch's epoch index
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "train_one_epoch", dying)
    return lambda: monkeypatch.setattr(runner, "train_one_epoch", original)


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A 24-image train / 8-image val synthetic COCO set, generated once per test session."""
    from kpdet.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, num_train=24, num_val=8, seed=3)
    return root


def data_overrides(root: Path, val_split: str = "val") -> list[str]:
    """Overrides that point a config's train and val splits at a synthetic set."""
    return [f"data.train.ann_file={root / 'train.json'}", f"data.train.img_dir={root / 'images'}",
            f"data.val.ann_file={root / f'{val_split}.json'}", f"data.val.img_dir={root / 'images'}"]


def run_tool(*args: str, timeout: float = 300, env: dict | None = None) -> str:
    """Run a tools/ script as a user does (from the repo root); returns stdout, fails with its stderr."""
    import os
    import subprocess

    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_synthetic, tmp_path_factory) -> Path:
    """A best.pt as the runner writes it (weights, config YAML, keypoint spec) for the smoke model on
    the tiny synthetic set, untrained but with a head (init std 0.05) whose heatmaps have clear,
    random peaks: what inference and export tests need, in a second instead of minutes of training."""
    return write_checkpoint(tiny_synthetic, tmp_path_factory.mktemp("checkpoint"))


def write_checkpoint(root: Path, work: Path, *overrides: str) -> Path:
    """work/best.pt for the smoke config (plus `overrides`) on the synthetic set at `root`: untrained,
    head init std 0.05 (see tiny_checkpoint)."""
    from omegaconf import OmegaConf

    from kpdet.build import build_model_from_cfg, spec_to_checkpoint
    from kpdet.config import load_config
    from kpdet.data.coco import keypoint_spec, read_json, select_category

    cfg = load_config(ROOT / "configs" / "smoke.yaml", [*data_overrides(root), f"work_dir={work}",
                                                         "model.head_init_std=0.05", *overrides])
    spec = keypoint_spec(select_category(read_json(root / "train.json"), None))
    torch.manual_seed(0)
    model = build_model_from_cfg(cfg, spec.num_keypoints, "sigmoid")
    torch.save({"model": model.state_dict(), "keypoints": spec_to_checkpoint(spec),
                "config": OmegaConf.to_yaml(cfg)}, work / "best.pt")
    return work / "best.pt"


@pytest.fixture(scope="session")
def tiny_points(tmp_path_factory):
    from kpdet.data.points_synthetic import generate_points

    root = tmp_path_factory.mktemp("points")
    generate_points(root, num_train=16, num_val=4, seed=1, size=64, max_objects=12)
    return root


@pytest.fixture(scope="session")
def dumbbells(tmp_path_factory):
    """8 images of 64 x 64 px, each with 1-3 two-keypoint figures: a red disc (head) joined by a bar
    to a green one (tail), 10-14 px apart, any direction; an easy multi-instance pose set."""
    import cv2
    import numpy as np

    root = tmp_path_factory.mktemp("dumbbells")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(8):
        img = np.full((64, 64, 3), 30, np.uint8)
        for _ in range(rng.integers(1, 4)):
            for _ in range(50):  # a place that does not touch the earlier figures
                head = rng.uniform(8, 56, 2)
                angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(10, 14)
                tail = head + length * np.array([np.cos(angle), np.sin(angle)])
                if (4 < tail).all() and (tail < 60).all() and all(
                        min(np.linalg.norm(p - q) for p in (head, tail) for q in old) > 9
                        for old in [np.array(a["keypoints"]).reshape(2, 3)[:, :2] for a in annotations
                                    if a["image_id"] == i + 1]):
                    break
            fx = lambda p: (int(round(p[0] * 16)), int(round(p[1] * 16)))
            cv2.line(img, fx(head), fx(tail), (200, 200, 200), 1, cv2.LINE_AA, 4)
            cv2.circle(img, fx(head), 3 * 16, (0, 0, 255), -1, cv2.LINE_AA, 4)  # BGR: red
            cv2.circle(img, fx(tail), 3 * 16, (0, 255, 0), -1, cv2.LINE_AA, 4)
            x0, y0 = np.minimum(head, tail) - 3
            w, h = np.abs(head - tail) + 6
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                                "keypoints": [*head.round(2).tolist(), 2, *tail.round(2).tolist(), 2],
                                "num_keypoints": 2, "bbox": [x0, y0, w, h], "area": float(w * h)})
        cv2.imwrite(str(root / "images" / f"{i}.png"), img)
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 64, "height": 64})
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "dumbbell", "keypoints": ["head", "tail"],
                            "skeleton": [[1, 2]]}]}
    (root / "train.json").write_text(json.dumps(data))
    return root
