"""The per-instance attribute field (model.attribute): read per sample, bad values named, synthetic labels."""
import json

import numpy as np
import pytest
import torch

from kpdet.data import TopDownDataset
from kpdet.data.coco import DatasetError
from kpdet.data.synthetic import occlusion_bin
from tests.data.test_dataset import _ann, write_fixture

KPS = [(60.0, 50.0, 2), (80.0, 50.0, 2), (70.0, 65.0, 2)]
BOX = [50.0, 30.0, 50.0, 60.0]


def _dataset(path, img_dir, **kwargs):
    return TopDownDataset(path, img_dir, (64, 64), train=False, **kwargs)


def test_samples_carry_the_class_and_unflipped(tmp_path):
    path, img_dir = write_fixture(tmp_path, [_ann(1, 1, KPS, BOX, age=2), _ann(2, 2, KPS, BOX, age=0)])
    data = _dataset(path, img_dir, attribute=("age", 3))
    assert [int(data[i]["attribute"]) for i in range(2)] == [2, 0]
    assert data[0]["attribute"].dtype == torch.int64
    torch.manual_seed(0)  # a flipped training sample keeps its class
    flipping = TopDownDataset(path, img_dir, (64, 64), train=True, flip_prob=1.0, photometric=False,
                              attribute=("age", 3))
    assert int(flipping[0]["attribute"]) == 2


def test_without_attribute_samples_are_unchanged(tmp_path):
    path, img_dir = write_fixture(tmp_path, [_ann(1, 1, KPS, BOX, age=2)])
    assert "attribute" not in _dataset(path, img_dir)[0]


@pytest.mark.parametrize("extra, why", [
    ({}, "no attribute field 'age'"),
    ({"age": 3}, "'age' = 3 is not an integer class in \\[0, 3\\)"),
    ({"age": -1}, "'age' = -1 is not"),
    ({"age": 1.0}, "'age' = 1.0 is not"),
    ({"age": True}, "'age' = True is not"),
    ({"age": "1"}, "'age' = '1' is not"),
])
def test_missing_or_bad_field_names_file_annotation_and_field(tmp_path, extra, why):
    path, img_dir = write_fixture(tmp_path, [_ann(1, 1, KPS, BOX, age=0), _ann(7, 2, KPS, BOX, **extra)])
    with pytest.raises(DatasetError, match=f"{path}: annotation 7 \\(image 2\\): (attribute field )?{why}"):
        _dataset(path, img_dir, attribute=("age", 3))
    skipping = _dataset(path, img_dir, attribute=("age", 3), skip_invalid=True)
    assert len(skipping) == 1 and skipping.num_skipped == 1


def test_dropped_annotations_need_no_field(tmp_path):
    # a crowd annotation and one without labelled keypoints are not samples: no class needed
    unlabelled = [(0.0, 0.0, 0)] * 3
    anns = [_ann(1, 1, KPS, BOX, age=1), {**_ann(2, 1, KPS, BOX), "iscrowd": 1}, _ann(3, 1, unlabelled, BOX)]
    path, img_dir = write_fixture(tmp_path, anns)
    assert len(_dataset(path, img_dir, attribute=("age", 3))) == 1


def test_occlusion_bins():
    # 0 | 1-2 | 3-5 | 6+ not-visible keypoints -> classes 0 | 1 | 2 | 3
    assert [occlusion_bin(n) for n in range(9)] == [0, 1, 1, 2, 2, 2, 3, 3, 3]


def test_synthetic_annotations_carry_their_occlusion_bin(tiny_synthetic):
    for split in ("train", "val"):
        for ann in json.loads((tiny_synthetic / f"{split}.json").read_text())["annotations"]:
            hidden = int((np.asarray(ann["keypoints"]).reshape(17, 3)[:, 2] < 2).sum())
            assert ann["occlusion_bin"] == occlusion_bin(hidden)
