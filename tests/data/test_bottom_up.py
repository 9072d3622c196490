"""Whole-image samples (data.mode=bottom_up): letterbox geometry, instances, ignore mask, counts."""
import json

import cv2
import numpy as np
import pytest
import torch

from kpdet.codecs import build_codec
from kpdet.codecs.instances import decode_points, encode_point_maps
from kpdet.codecs.offset import OffsetCodec
from kpdet.data import transforms as T
from kpdet.data.bottom_up import WholeImageDataset, letterbox_matrix, region_mask
from kpdet.data.coco import DatasetError
from kpdet.losses import build_loss
from kpdet.losses.ignore import ignore_pixels


def test_letterbox_fits_the_whole_image_centred():
    # 640 x 480 into 320 x 256: scale 0.5, the image spans 240 rows, 8 empty rows above and below.
    # Pixel edges: image [-0.5, 639.5] x [-0.5, 479.5] -> input [-0.5, 319.5] x [7.5, 247.5].
    m = letterbox_matrix(640, 480, (320, 256))
    corners = T.transform_points(np.array([[-0.5, -0.5], [639.5, 479.5]]), m)
    np.testing.assert_allclose(corners, [[-0.5, 7.5], [319.5, 247.5]], atol=1e-9)


@pytest.mark.parametrize("params", [T.AugParams(), T.AugParams(1.2, 30.0, (0.1, -0.05), True),
                                    T.AugParams(0.8, -70.0, (0.0, 0.1), False)])
def test_a_painted_dot_and_its_keypoint_still_coincide(params):
    yy, xx = np.mgrid[:90, :120]
    blob = 255 * np.exp(-((xx - 70) ** 2 + (yy - 40) ** 2) / (2 * 2.0**2))  # a smooth dot at (70, 40)
    image = np.repeat(blob[..., None], 3, axis=2).astype(np.uint8)
    m = letterbox_matrix(120, 90, (128, 128), params)
    warped = T.warp_image(image, m, (128, 128))[..., 0].astype(np.float64)
    ys, xs = np.nonzero(warped)
    centroid = np.array([np.average(xs, weights=warped[ys, xs]), np.average(ys, weights=warped[ys, xs])])
    np.testing.assert_allclose(centroid, T.transform_points(np.array([70.0, 40.0]), m), atol=0.15)


def test_region_mask_covers_a_box():
    # box x in [2, 6], y in [1, 3] (edges) at identity: pixel centres 2.5.. -> columns 3-5 (and
    # the edge pixels 2 and 6 are half covered: fillPoly includes them), rows 1-3
    mask = region_mask([[2.0, 1.0, 4.0, 2.0]], np.array([[1.0, 0, 0], [0, 1.0, 0]]), (10, 6))
    assert mask[2, 4] == 1 and mask[0].sum() == 0 and mask[:, 8:].sum() == 0 and mask[5].sum() == 0


def _coco(tmp_path, annotations, images=3, categories=None):
    (tmp_path / "img").mkdir(exist_ok=True)
    for i in range(images):
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), np.full((40, 60, 3), 50, np.uint8))
    categories = categories or [{"id": 1, "name": "a", "keypoints": ["left_x", "right_x"], "skeleton": []}]
    data = {"images": [{"id": i + 1, "file_name": f"{i}.png", "width": 60, "height": 40}
                       for i in range(images)],
            "annotations": [{"id": j + 1, "iscrowd": 0, "category_id": 1, **a}
                            for j, a in enumerate(annotations)],
            "categories": categories}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path / "ann.json", tmp_path / "img"


def test_single_instance_samples_ignore_regions_and_counts(tmp_path, caplog):
    ann, img = _coco(tmp_path, [
        {"image_id": 1, "keypoints": [10, 20, 2, 30, 20, 2], "bbox": [5, 15, 30, 10]},
        {"image_id": 1, "keypoints": [0, 0, 0, 0, 0, 0], "bbox": [40, 5, 10, 10]},  # unlabelled: ignored
        {"image_id": 2, "bbox": [0, 0, 20, 20], "iscrowd": 1},  # crowd, without keypoints
    ])  # image 3 has nothing: a negative
    ds = WholeImageDataset(ann, img, (64, 64), train=False, photometric=False)
    assert len(ds) == 3
    assert "'crowd_regions': 1, 'unlabelled_instances': 1" in caplog.text  # logged, not silent
    assert ds.counts == {"invalid": 0, "crowd_regions": 1, "unlabelled_instances": 1,
                         "truncated_instances": 0, "negative_images": 2}
    # 60 x 40 into 64 x 64: scale 64/60, the image spans 42.67 rows starting at 10.67 - 0.5
    s = ds[0]
    k = 64 / 60
    np.testing.assert_allclose(s["keypoints"][0].numpy(), [k * 10.5 - 0.5, k * 20.5 - 0.5 + 32 - 20 * k],
                               atol=1e-4)
    assert s["ann_id"].item() == 1 and s["visible"].tolist() == [1.0, 1.0]
    box = T.transform_points(np.array([45.0, 10.0]), letterbox_matrix(60, 40, (64, 64))).round().astype(int)
    assert s["ignore"][box[1], box[0]] == 1 and s["ignore"].sum() > 50
    assert ds[1]["ignore"].sum() > 100 and ds[1]["ann_id"].item() == -1
    negative = ds[2]
    assert negative["visible"].sum() == 0 and negative["ignore"].sum() == 0


def test_flip_swaps_left_and_right(tmp_path):
    figure = {"image_id": 1, "keypoints": [10, 20, 2, 30, 20, 1], "bbox": [5, 15, 30, 10]}
    ann, img = _coco(tmp_path, [figure], images=1)
    ds = WholeImageDataset(ann, img, (64, 64), train=True, flip_prob=1.0, scale_factor=0, rotation_prob=0,
                           photometric=False)
    s = ds[0]
    m = letterbox_matrix(60, 40, (64, 64), T.AugParams(flip=True))
    # slot 0 (left_x) now holds the old right_x, mirrored
    expected = T.transform_points(np.array([30.0, 20.0]), m)
    np.testing.assert_allclose(s["keypoints"][0].numpy(), expected, atol=1e-4)


def test_two_instances_in_single_mode_is_an_error_naming_the_image(tmp_path):
    ann, img = _coco(tmp_path, [{"image_id": 2, "keypoints": [10, 20, 2, 30, 20, 2]},
                                {"image_id": 2, "keypoints": [11, 20, 2, 31, 20, 2]}])
    with pytest.raises(DatasetError, match="image 2 .*2 instances.*task=single"):
        WholeImageDataset(ann, img, (64, 64), train=False)
    ds = WholeImageDataset(ann, img, (64, 64), train=False, skip_invalid=True)
    assert ds.counts["truncated_instances"] == 1


def test_point_objects_sample(tmp_path):
    categories = [{"id": 7, "name": "b", "keypoints": ["c"]}, {"id": 3, "name": "a", "keypoints": ["c"]},
                  {"id": 9, "name": "pose", "keypoints": ["p", "q"]}]
    ann, img = _coco(tmp_path, [], images=1, categories=categories)
    data = json.loads(ann.read_text())
    data["annotations"] = [{"id": 1, "image_id": 1, "category_id": 7, "keypoints": [5, 6, 2]},
                           {"id": 2, "image_id": 1, "category_id": 3, "keypoints": [15, 16, 2]},
                           {"id": 3, "image_id": 1, "category_id": 9, "keypoints": [1, 1, 2, 2, 2, 2]}]
    ann.write_text(json.dumps(data))
    ds = WholeImageDataset(ann, img, (60, 40), train=False, task="points", max_instances=4)
    assert ds.spec.names == ("a", "b")  # one channel per one-keypoint category, by id
    s = ds[0]
    assert s["labels"].tolist() == [1, 0, -1, -1]
    assert s["classes"].tolist() == [[0, 1], [1, 0], [0, 0], [0, 0]]
    # the image has the input's size: the letterbox is the identity
    np.testing.assert_allclose(s["keypoints"][:2].numpy(), [[5, 6], [15, 16]], atol=1e-6)
    assert s["visible"].tolist() == [1, 1, 0, 0]


def test_point_maps_are_the_maximum_per_class_and_decode_back():
    codec = OffsetCodec(build_codec({"type": "msra", "sigma": 1.0, "one_positive": True},
                                    input_size=(32, 32), heatmap_size=(16, 16)), radius=0)
    points = torch.tensor([[[8.6, 8.2], [12.2, 8.2], [20.0, 20.0], [0.0, 0.0]]])  # input px; / 2 = heatmap px
    classes = torch.tensor([[[1.0, 0], [1.0, 0], [0, 1.0], [0, 0]]])  # the last slot is padding
    (maps, offsets, mask), weights = encode_point_maps(codec, points, classes, torch.ones(1, 4))
    assert weights.tolist() == [[1.0, 1.0]]
    # class 0: two peaks of exactly 1.0 at the nearest pixels (4, 4) and (6, 4); class 1 at (10, 10)
    assert maps[0, 0, 4, 4] == 1.0 and maps[0, 0, 4, 6] == 1.0 and maps[0, 1, 10, 10] == 1.0
    assert (maps[0, 0] == 1.0).sum() == 2 and maps[0, 1, 0, 0] == 0  # padding drew nothing at (0, 0)
    # offsets at the trained pixels: (4.3 - 4, 4.1 - 4) and (6.1 - 6, 4.1 - 4) heatmap px
    torch.testing.assert_close(offsets[0, 0, :, 4, 4], torch.tensor([0.3, 0.1]))
    torch.testing.assert_close(offsets[0, 0, :, 4, 6], torch.tensor([0.1, 0.1]))
    assert mask.sum() == 3
    found = decode_points(codec, maps, offsets, max_peaks=5, threshold=0.5)
    got = found["points"][0, 0][found["keep"][0, 0]]
    torch.testing.assert_close(got.sort(0).values, points[0, :2].sort(0).values)
    assert found["keep"][0, 1].sum() == 1


def test_ignored_pixels_get_no_gradient_for_any_loss():
    torch.manual_seed(0)
    ignore = torch.zeros(1, 8, 8, dtype=torch.uint8)
    ignore[0, :4, :4] = 1  # input 8 x 8 -> map 4 x 4: the top-left 2 x 2 heatmap pixels
    for name in ("distance_aware_focal", "mse"):
        pred = torch.randn(1, 2, 4, 4, requires_grad=True)
        target = torch.zeros(1, 2, 4, 4)
        target[0, :, 0, 0] = 1.0
        build_loss(name)(ignore_pixels(pred, ignore), target).backward()
        assert pred.grad[0, :, :2, :2].abs().sum() == 0
        assert (pred.grad[0, :, 2:, 2:].abs() > 0).all()


def test_bottom_up_with_a_bins_head_is_an_error_naming_both():
    from kpdet.build import pipeline_kind
    from kpdet.config import load_config

    cfg = load_config("configs/synthetic/emd_ordinal.yaml", ["data.mode=bottom_up"])
    with pytest.raises(ValueError, match="data.mode='bottom_up'.*model.head='ordinal_xy'.*codec.type="):
        pipeline_kind(cfg)
