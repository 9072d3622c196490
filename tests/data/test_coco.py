"""COCO files as found in the wild: bad input gives errors naming file and id; quirks are read right."""
import json

import cv2
import numpy as np
import pytest

from kpdet.data import DatasetError, TopDownDataset, load_coco_keypoints, read_image
from kpdet.data.coco import select_category

CATEGORIES = [
    {"id": 1, "name": "person", "keypoints": ["nose", "left_eye", "right_eye"], "skeleton": [[1, 2], [1, 3]]},
    {"id": 2, "name": "hand", "keypoints": ["wrist", "l_tip", "r_tip", "middle"], "skeleton": []},
    {"id": 3, "name": "car"},  # a detection category without keypoints
]


def _ann(ann_id, image_id=1, category_id=1, k=3, bbox=(20, 20, 40, 40), **extra):
    keypoints = [v for i in range(k) for v in (30.0 + 5 * i, 35.0, 2)]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "keypoints": keypoints,
            "num_keypoints": k, "bbox": list(bbox), "area": 1600.0, "iscrowd": 0, **extra}


def _write(tmp_path, annotations, n_images=2, size=(80, 60)):
    img_dir = tmp_path / "img"
    img_dir.mkdir(exist_ok=True)
    images = []
    for i in range(1, n_images + 1):
        cv2.imwrite(str(img_dir / f"{i}.png"), np.full((size[1], size[0], 3), 90, np.uint8))
        images.append({"id": i, "file_name": f"{i}.png", "width": size[0], "height": size[1]})
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return path, img_dir


def test_missing_file_and_malformed_json_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match=r"annotation file not found: .*nope\.json"):
        load_coco_keypoints(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [], "annotations": [\n  {"id": 1,, }]}')
    with pytest.raises(DatasetError, match=r"malformed JSON in .*bad\.json: .* line 2 column"):
        load_coco_keypoints(bad)
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(DatasetError, match="not a COCO annotation file"):
        load_coco_keypoints(tmp_path / "list.json")


def test_every_bad_annotation_is_reported_at_once(tmp_path):
    nan_ann = _ann(12)
    nan_ann["keypoints"][3] = float("nan")  # json.dumps writes NaN, json.load reads it back
    anns = [_ann(10), _ann(11, k=2), nan_ann, _ann(13, bbox=(5, 5, -3, 10)), _ann(14, bbox=(5, 5, 0, 0)),
            _ann(15, image_id=99), _ann(16, category_id=2, k=3)]
    path, img_dir = _write(tmp_path, anns)
    with pytest.raises(DatasetError) as info:
        TopDownDataset(path, img_dir, (32, 32), train=True)
    message = str(info.value)
    assert message.startswith(f"5 invalid annotation(s) in {path}")
    assert "annotation 11 (image 1): 'keypoints' has 6 values, expected 3 * 3" in message
    assert "annotation 12 (image 1): 'keypoints' has NaN" in message
    assert "annotation 13 (image 1): 'bbox' [5, 5, -3, 10] has a negative or empty size" in message
    assert "annotation 14 (image 1): 'bbox' [5, 5, 0, 0] has a negative or empty size" in message
    assert "annotation 15 (image 99): image_id 99 is not in 'images'" in message
    assert "annotation 10 " not in message and "annotation 16 " not in message  # fine / other category


def test_skip_invalid_skips_and_counts(tmp_path):
    anns = [_ann(10), _ann(11, k=2), _ann(13, bbox=(5, 5, -3, 10)), _ann(20, image_id=2)]
    path, img_dir = _write(tmp_path, anns)
    (img_dir / "2.png").unlink()  # annotation 20's image is missing
    ds = TopDownDataset(path, img_dir, (32, 32), train=True, skip_invalid=True)
    assert ds.num_skipped == 3 and len(ds) == 1 and int(ds[0]["ann_id"]) == 10
    assert sorted(ds.coco.getAnnIds()) == [10]  # evaluation ground truth drops them too
    with pytest.raises(DatasetError, match=r"image 2: file not found: .*2\.png \(annotation 20\)"):
        TopDownDataset(path, img_dir, (32, 32), train=True)


def test_unreadable_and_truncated_images_name_file_and_id(tmp_path):
    path, img_dir = _write(tmp_path, [_ann(10), _ann(20, image_id=2)])
    (img_dir / "1.png").write_bytes(b"this is not an image")
    ds = TopDownDataset(path, img_dir, (32, 32), train=False)
    with pytest.raises(DatasetError, match=r"cannot decode image 1 \(.*1\.png\)"):
        ds[0]
    ok, jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    (tmp_path / "cut.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    with pytest.raises(DatasetError, match=r"image 7 \(.*cut\.jpg\)"):
        read_image(tmp_path / "cut.jpg", image_id=7)
    # skip_invalid: the unreadable image's sample is replaced by the next readable one.
    ds = TopDownDataset(path, img_dir, (32, 32), train=False, skip_invalid=True)
    assert int(ds[0]["ann_id"]) == 20 and ds.unreadable == {0}


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = read_image(tmp_path / "g.png")
    assert out.shape == (3, 4, 3) and (out == gray[..., None]).all()
    bgra = np.zeros((3, 4, 4), np.uint8)
    bgra[..., 0], bgra[..., 3] = 200, 128  # blue, half transparent
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    out = read_image(tmp_path / "a.png")
    assert out.shape == (3, 4, 3) and out[0, 0].tolist() == [0, 0, 200]  # RGB: blue last


def _exif_jpeg(path, orientation):
    """A 40 x 20 (W x H) JPEG, white square in the stored top-left corner, EXIF orientation tag."""
    from PIL import Image

    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:6, :6] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, exif=exif, quality=95)


def test_exif_orientation_follows_the_annotation_size(tmp_path):
    _exif_jpeg(tmp_path / "r.jpg", 6)  # 6 = displayed rotated 90 degrees clockwise: 20 x 40
    shown = read_image(tmp_path / "r.jpg", 1, expected_size=(20, 40))
    assert shown.shape == (40, 20, 3) and shown[:6, -6:].mean() > 200  # top-left went to top-right
    raw = read_image(tmp_path / "r.jpg", 1, expected_size=(40, 20))  # annotated on the stored pixels
    assert raw.shape == (20, 40, 3) and raw[:6, :6].mean() > 200
    wrong = r"image 1 \(.*r\.jpg\) is 20x40 px but the annotation file says 30x30"
    with pytest.raises(DatasetError, match=wrong):
        read_image(tmp_path / "r.jpg", 1, expected_size=(30, 30))


def test_category_choice_and_keypoint_sets(tmp_path):
    anns = [_ann(10), _ann(30, category_id=2, k=4), _ann(31, category_id=2, k=4, iscrowd=1)]
    path, img_dir = _write(tmp_path, anns)
    data = json.loads(path.read_text())
    assert select_category(data, None)["id"] == 1  # first with keypoint names
    with pytest.raises(DatasetError, match="category 3 has no 'keypoints' names"):
        select_category(data, 3)
    with pytest.raises(DatasetError, match=r"no category with id 9; categories with keypoints: \[1, 2\]"):
        select_category(data, 9)
    hands = TopDownDataset(path, img_dir, (32, 32), train=True, category_id=2)
    assert hands.spec.names == ("wrist", "l_tip", "r_tip", "middle") and hands.spec.flip_index == (0, 2, 1, 3)
    assert len(hands) == 1 and hands[0]["keypoints"].shape == (4, 2)


def test_tiny_boxes_and_keypoints_outside_the_image(tmp_path):
    ann = _ann(10, bbox=(70.5, 50.5, 0.5, 0.5))
    ann["keypoints"][:3] = [95.0, -10.0, 2]  # outside the 80 x 60 image
    path, img_dir = _write(tmp_path, [ann])
    s = TopDownDataset(path, img_dir, (16, 16), train=False, bbox_padding=1.0)[0]
    # 0.5 px box -> 0.5 x 0.5 crop around (70.75, 50.75), k = 16 / 0.5 = 32:
    # keypoint 1 (35, 35): ((35 - 70.75) * 32 + 7.5, (35 - 50.75) * 32 + 7.5) = (-1136.5, -496.5).
    np.testing.assert_allclose(s["keypoints"][1].numpy(), [-1136.5, -496.5], rtol=1e-6)
    assert s["visible"].tolist() == [1.0, 1.0, 1.0]  # the codec, not the dataset, drops off-heatmap points
