"""coco_keypoint_eval against tiny hand-built cases whose AP is worked out by hand.

Setup: K = 3 keypoints, every sigma 0.05, every instance area s = 10000 (100 x 100 box).
pycocotools' OKS for a prediction displaced by d px on every keypoint:
    e = d^2 / (2*sigma)^2 / s / 2 = d^2 / 0.01 / 10000 / 2 = d^2 / 200,  OKS = exp(-e)
    d = 5  -> exp(-0.125) = 0.8825    d = 10 -> exp(-0.5) = 0.6065
Thresholds t = 0.50, 0.55, ..., 0.95 (10 of them); a match needs OKS >= t.
"""
import copy
import json
import math

import numpy as np
import pytest
import torch

from kpdet.metrics import COCO_KEYS, coco_keypoint_eval, instance_score

SIGMAS = [0.05, 0.05, 0.05]
LAYOUT = np.array([[20.0, 20.0], [50.0, 50.0], [80.0, 80.0]])  # keypoints inside a 100x100 box


def _instance(ann_id, image_id, x0, y0):
    kpts = np.concatenate([LAYOUT + [x0, y0], np.full((3, 1), 2.0)], axis=1)
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "keypoints": kpts.reshape(-1).tolist(), "num_keypoints": 3,
            "bbox": [x0, y0, 100.0, 100.0], "area": 10000.0}


def _dataset(crowd=True):
    """Image 1: instances A (box at 0,0) and B (box at 150,0). Image 2: instance C and a crowd."""
    anns = [_instance(1, 1, 0.0, 0.0), _instance(2, 1, 150.0, 0.0), _instance(3, 2, 0.0, 0.0)]
    if crowd:
        anns.append({"id": 4, "image_id": 2, "category_id": 1, "iscrowd": 1, "keypoints": [0] * 9,
                     "num_keypoints": 0, "bbox": [150.0, 50.0, 60.0, 60.0], "area": 3600.0})
    return {  # no "info" / "licenses": some converters omit them
        "images": [{"id": 1, "width": 300, "height": 200, "file_name": "1.jpg"},
                   {"id": 2, "width": 300, "height": 200, "file_name": "2.jpg"}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "thing", "keypoints": ["a", "b", "c"], "skeleton": [[1, 2]]}],
    }


def _write(tmp_path, dataset, name="gt.json"):
    path = tmp_path / name
    path.write_text(json.dumps(dataset))
    return path


def _pred(image_id, x0, y0, dx=0.0, score=1.0):
    kpts = np.concatenate([LAYOUT + [x0 + dx, y0], np.ones((3, 1))], axis=1)
    return {"image_id": image_id, "category_id": 1, "keypoints": kpts.reshape(-1).tolist(), "score": score}


@pytest.fixture
def gt_path(tmp_path):
    return _write(tmp_path, _dataset())


def test_perfect_predictions_give_ap_one(gt_path):
    preds = [_pred(1, 0, 0), _pred(1, 150, 0), _pred(2, 0, 0)]
    out = coco_keypoint_eval(str(gt_path), preds, SIGMAS)
    assert set(out) == set(COCO_KEYS)
    assert out["AP"] == pytest.approx(1.0) and out["AR"] == pytest.approx(1.0)
    assert out["APl"] == pytest.approx(1.0)
    assert out["APm"] == -1.0  # no gt with area in [32^2, 96^2]: COCOeval's -1


def test_displaced_predictions_cross_known_thresholds(gt_path):
    # A shifted 5 px (OKS 0.8825, score 0.9), B shifted 10 px (OKS 0.6065, score 0.8).
    # t in {.50,.55,.60}: both match, AP_t = 1.
    # t in {.65,.70,.75,.80,.85}: only A (ranked first) matches: precision 1 up to recall
    #   0.5, recall never reaches 1 -> 51 of the 101 recall points -> AP_t = 51/101.
    # t in {.90,.95}: nothing matches, AP_t = 0.
    # AP = (3 + 5 * 51/101) / 10 = 558/1010; AR = (3 * 1 + 5 * 0.5) / 10 = 0.55.
    preds = [_pred(1, 0, 0, dx=5.0, score=0.9), _pred(1, 150, 0, dx=10.0, score=0.8)]
    out = coco_keypoint_eval(gt_path, preds, SIGMAS)
    assert out["AP"] == pytest.approx(558 / 1010)
    assert out["AP50"] == pytest.approx(1.0)
    assert out["AP75"] == pytest.approx(51 / 101)
    assert out["AR"] == pytest.approx(0.55)
    assert out["AR50"] == pytest.approx(1.0) and out["AR75"] == pytest.approx(0.5)


def test_ranking_matters_when_the_worse_prediction_scores_higher(gt_path):
    # Same shifts, B ranked first. For t in {.65..85}: ranks give precision [0, 1/2] at
    # recall [0, 1/2]; interpolated precision is 1/2 on recall points 0..0.50 (51 points)
    # -> AP_t = 25.5/101; AP = (3 + 5 * 25.5/101) / 10 = 430.5/1010. AR is unchanged.
    preds = [_pred(1, 0, 0, dx=5.0, score=0.3), _pred(1, 150, 0, dx=10.0, score=0.8)]
    out = coco_keypoint_eval(gt_path, preds, SIGMAS)
    assert out["AP"] == pytest.approx(430.5 / 1010)
    assert out["AR"] == pytest.approx(0.55)


def test_prediction_inside_crowd_region_is_ignored(tmp_path):
    # Image 2: C predicted exactly (score 0.5) plus a spurious higher-scored prediction
    # inside the crowd box. The crowd gt has no keypoints, so pycocotools measures the
    # distance to its doubled box [90, 270] x [-10, 170]: 0 -> OKS 1 -> matched to the
    # crowd and ignored -> AP 1. Without the crowd annotation the spurious one is a false
    # positive ranked first: precision [0, 1/2] at recall [0, 1] -> AP = 0.5.
    spurious = {"image_id": 2, "category_id": 1, "score": 0.99,
                "keypoints": [160, 60, 1, 180, 80, 1, 200, 100, 1]}
    preds = [_pred(2, 0, 0, score=0.5), spurious]
    with_crowd = coco_keypoint_eval(_write(tmp_path, _dataset(crowd=True), "a.json"), preds, SIGMAS)
    without = coco_keypoint_eval(_write(tmp_path, _dataset(crowd=False), "b.json"), preds, SIGMAS)
    assert with_crowd["AP"] == pytest.approx(1.0)
    assert without["AP"] == pytest.approx(0.5)


def test_evaluation_restricted_to_evaluated_images(gt_path):
    preds = [_pred(1, 0, 0), _pred(1, 150, 0)]  # image 2 not predicted
    assert coco_keypoint_eval(gt_path, preds, SIGMAS)["AP"] == pytest.approx(1.0)
    # Counting image 2 as evaluated, C is missed: recall 2/3 at precision 1 -> the recall
    # points 0, 0.01, ..., 0.66 (67 of 101) have precision 1 -> AP = 67/101, AR = 2/3.
    out = coco_keypoint_eval(gt_path, preds, SIGMAS, image_ids=[1, 2])
    assert out["AP"] == pytest.approx(67 / 101)
    assert out["AR"] == pytest.approx(2 / 3)


def test_coco_object_torch_keypoints_and_missing_optional_keys(tmp_path):
    from pycocotools.coco import COCO

    dataset = _dataset()
    for ann in dataset["annotations"]:
        if not ann["iscrowd"]:
            del ann["num_keypoints"], ann["area"]  # filled as 3 and w*h = 10000
    coco = COCO()
    coco.dataset = copy.deepcopy(dataset)
    coco.createIndex()
    # Only A predicted, shifted 10 px (OKS 0.6065); B unpredicted caps recall at 1/2.
    # t <= 0.60: precision 1 up to recall 0.5 -> 51/101; above: 0 -> AP = 3 * 51/101 / 10.
    pred = _pred(1, 0, 0, dx=10.0)
    pred["keypoints"] = torch.tensor(pred["keypoints"]).view(3, 3)
    pred["bbox"] = [0, 0, 100, 100]  # dropped: the keypoint branch of loadRes is used
    out = coco_keypoint_eval(coco, [pred], SIGMAS)
    assert out["AP"] == pytest.approx(153 / 1010)


def test_empty_predictions_and_wrong_sigma_count(gt_path):
    out = coco_keypoint_eval(gt_path, [], SIGMAS)
    assert out == {k: 0.0 for k in COCO_KEYS}
    with pytest.raises(ValueError, match="3 keypoints, sigmas have 17"):
        coco_keypoint_eval(gt_path, [_pred(1, 0, 0)], [0.05] * 17)


def test_instance_score_is_mean_confidence_above_threshold():
    conf = np.array([[0.9, 0.1, 0.5], [0.1, 0.2, 0.05]])
    # row 0: (0.9 + 0.5) / 2 = 0.7; row 1: nothing > 0.2 (0.2 itself is not) -> 0
    assert instance_score(conf) == pytest.approx([0.7, 0.0])
    assert instance_score(torch.tensor(conf), box_scores=[0.5, 1.0]) == pytest.approx([0.35, 0.0])
    assert not any(math.isnan(v) for v in instance_score(conf))
