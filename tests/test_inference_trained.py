"""kpdet.Predictor on a model that kpdet trained: it recovers the keypoints of the synthetic images."""
import json

import numpy as np
import pytest

from kpdet import Predictor
from kpdet.metrics.distance import bbox_longer_side, pck


def predictor_pck(checkpoint, root, split="train") -> float:
    """PCK@0.2 (longer box side, the contract's normaliser) of Predictor.predict(file, GT boxes) over
    the annotated instances of a split."""
    data = json.loads((root / f"{split}.json").read_text())
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    by_image = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    pred, gt, visible, boxes = [], [], [], []
    for image in data["images"]:
        anns = by_image.get(image["id"], [])
        found = predictor.predict(root / "images" / image["file_name"], [a["bbox"] for a in anns])
        for ann, points in zip(anns, found["keypoints"]):
            triples = np.asarray(ann["keypoints"], float).reshape(-1, 3)
            pred.append(points)
            gt.append(triples[:, :2])
            visible.append(triples[:, 2] > 0)
            boxes.append(ann["bbox"])
    norm = bbox_longer_side(np.asarray(boxes, float))
    return pck(np.stack(pred), np.stack(gt), np.stack(visible), norm, (0.2,))["PCK@0.2"]


@pytest.mark.slow
def test_trained_model_recovers_synthetic_keypoints(tiny_synthetic, tmp_path):
    """36 steps of the smoke model on the 24 training images (as tests/engine/test_learning.py), then the
    Predictor, from the checkpoint alone, on the same images and boxes: PCK@0.2 equals what the run's
    own evaluation measured on those crops (0.82 when written), well above an untrained model's (< 0.2).
    Minutes on a loaded 2-core machine, hence `slow`; the fast Predictor tests are in test_inference.py."""
    from kpdet.config import load_config
    from kpdet.engine.runner import fit
    from tests.conftest import data_overrides

    cfg = load_config("configs/smoke.yaml", [
        *data_overrides(tiny_synthetic, val_split="train"), f"work_dir={tmp_path}", "data.aug.flip_prob=0",
        "data.aug.rotation_prob=0", "data.aug.scale_factor=0", "eval.vis_images=0",
        "train.val_interval=1000", "train.epochs=12", "train.lr=0.003"])
    metrics = fit(cfg)
    value = predictor_pck(tmp_path / "best.pt", tiny_synthetic)
    assert value == pytest.approx(metrics["PCK@0.2"], abs=1e-3)
    assert value > 0.5
