"""TopDownDataset on tiny COCO fixtures painted with one coloured dot per keypoint, and on openfield."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from kpdet.data import TopDownDataset, build_dataset
from kpdet.data.transforms import IMAGENET_MEAN, IMAGENET_STD

NAMES = ["left_eye", "right_eye", "nose"]  # flip index (1, 0, 2)
OPENFIELD = Path("/work/shared/data/dlc_openfield")


def _paint(image_hw, keypoints, sigma=2.0):
    """uint8 BGR image where keypoint k is a Gaussian dot in RGB channel k (so identities are visible)."""
    ys, xs = np.mgrid[: image_hw[0], : image_hw[1]]
    rgb = np.zeros((*image_hw, 3))
    for k, (x, y, v) in enumerate(keypoints):
        if v > 0:
            rgb[..., k] += 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)[..., ::-1]


def _ann(ann_id, image_id, keypoints, bbox, **extra):
    flat = [float(v) for kp in keypoints for v in kp]
    labelled = sum(1 for kp in keypoints if kp[2] > 0)
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": flat, "bbox": bbox,
            "num_keypoints": labelled, "area": bbox[2] * bbox[3] if bbox else 0, "iscrowd": 0, **extra}


def write_fixture(tmp_path, annotations, images=None, size=(160, 120), paint=True):
    """COCO file + PNG images (painted with the keypoints of their annotations); returns (json, img_dir)."""
    img_dir = tmp_path / "images"
    img_dir.mkdir(exist_ok=True)
    images = images or sorted({a["image_id"] for a in annotations})
    infos = []
    for image_id in images:
        kps = [kp for a in annotations if a["image_id"] == image_id and not a.get("iscrowd")
               for kp in np.reshape(a["keypoints"], (-1, 3))]
        canvas = _paint((size[1], size[0]), kps[:3] if paint else [])
        name = f"{image_id:04d}.png"
        cv2.imwrite(str(img_dir / name), canvas)
        infos.append({"id": image_id, "file_name": name, "width": size[0], "height": size[1]})
    data = {"images": infos, "annotations": annotations,
            "categories": [{"id": 1, "name": "face", "keypoints": NAMES, "skeleton": [[1, 2], [1, 3]]}]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path, img_dir


def _one_instance(tmp_path, rng):
    box = [50.0, 30.0, 50.0, 60.0]
    kps = [(rng.uniform(62, 88), rng.uniform(45, 75), 2) for _ in NAMES]
    return write_fixture(tmp_path, [_ann(1, 1, kps, box)])


def _crop_rgb(sample):
    """Undo the ImageNet normalisation: [3, H, W] -> [H, W, 3] in 0..255."""
    return (sample["image"].numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255


def test_dots_keep_identity_through_flip_rotation_scale(tmp_path):
    ann_file, img_dir = _one_instance(tmp_path, np.random.default_rng(0))
    ds = TopDownDataset(ann_file, img_dir, (48, 64), train=True, flip_prob=0.5, rotation=40,
                        rotation_prob=0.8, shift_factor=0.05, photometric=False)
    assert ds.spec.flip_index == (1, 0, 2)
    flips = 0
    for seed in range(30):
        torch.manual_seed(seed)
        s = ds[0]
        flipped = np.linalg.det(s["crop_to_image"][:, :2].numpy()) < 0  # a mirror has det < 0
        flips += flipped
        crop, keypoints = _crop_rgb(s), s["keypoints"].numpy()
        for k in range(3):
            # After a flip, crop keypoint k ("left_eye") is the annotation's right_eye, painted in channel 1.
            channel = ds.spec.flip_index[k] if flipped else k
            y, x = np.unravel_index(np.argmax(crop[..., channel]), crop.shape[:2])
            assert np.hypot(x - keypoints[k, 0], y - keypoints[k, 1]) <= 1.0, (seed, k, flipped)
    assert 5 < flips < 25  # flip_prob 0.5 over 30 draws


def test_crop_to_image_maps_crop_keypoints_back(tmp_path):
    ann_file, img_dir = _one_instance(tmp_path, np.random.default_rng(1))
    ds = TopDownDataset(ann_file, img_dir, (48, 64), train=True, rotation=40, rotation_prob=1.0)
    for seed in range(10):
        torch.manual_seed(seed)
        s = ds[0]
        A = s["crop_to_image"].double().numpy()
        back = s["keypoints"].double().numpy() @ A[:, :2].T + A[:, 2]
        flipped = np.linalg.det(A[:, :2]) < 0
        original = s["image_keypoints"].double().numpy()[:, :2]
        expected = original[list(ds.spec.flip_index)] if flipped else original
        np.testing.assert_allclose(back, expected, atol=2e-3)


def test_eval_sample_is_unaugmented_and_hand_computed(tmp_path):
    # box (10, 20, 40, 80), padding 1, input 32 x 64 (same aspect): k = 32 / 40 = 0.8,
    # crop x = (x - 30) * 0.8 + 15.5, crop y = (y - 60) * 0.8 + 31.5.
    kps = [(30, 60, 2), (10, 20, 1), (45, 95, 0)]
    ann_file, img_dir = write_fixture(tmp_path, [_ann(7, 3, kps, [10, 20, 40, 80])])
    ds = TopDownDataset(ann_file, img_dir, (32, 64), train=False, bbox_padding=1.0)
    s1, s2 = ds[0], ds[0]
    torch.testing.assert_close(s1["image"], s2["image"])
    torch.testing.assert_close(s1["keypoints"], torch.tensor([[15.5, 31.5], [-0.5, -0.5], [27.5, 59.5]]))
    torch.testing.assert_close(s1["visible"], torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(s1["crop_to_image"], torch.tensor([[1.25, 0, 10.625], [0, 1.25, 20.625]]))
    assert s1["image_id"].item() == 3 and s1["ann_id"].item() == 7 and s1["area"].item() == 3200
    assert s1["image"].shape == (3, 64, 32) and s1["image"].dtype == torch.float32


def test_samples_are_deterministic_given_the_torch_seed(tmp_path):
    ann_file, img_dir = _one_instance(tmp_path, np.random.default_rng(2))
    ds = TopDownDataset(ann_file, img_dir, (48, 64), train=True)
    torch.manual_seed(5)
    a = ds[0]
    torch.manual_seed(5)
    b = ds[0]
    c = ds[0]
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    assert not torch.equal(a["image"], c["image"])


def test_training_skips_crowd_zero_keypoint_and_other_category(tmp_path):
    kps = [(60, 50, 2), (70, 50, 2), (65, 60, 2)]
    anns = [
        _ann(1, 1, kps, [50, 40, 30, 30]),
        _ann(2, 1, kps, [50, 40, 30, 30], iscrowd=1),
        _ann(3, 1, [(0, 0, 0)] * 3, [10, 10, 20, 20]),
        _ann(4, 2, kps, [50, 40, 30, 30], category_id=2),
        _ann(5, 2, [(60, 50, 0), (70, 50, 1), (0, 0, 0)], [50, 40, 30, 30], num_keypoints=0),  # stale count
    ]
    ann_file, img_dir = write_fixture(tmp_path, anns, images=[1, 2, 3])  # image 3 has no annotations
    for train in (True, False):
        ds = TopDownDataset(ann_file, img_dir, (32, 32), train=train)
        # Kept: 1, and 5 (one labelled keypoint although num_keypoints says 0).
        assert [int(ds[i]["ann_id"]) for i in range(len(ds))] == [1, 5]
    assert ds.category_id == 1 and len(ds.coco.getImgIds()) == 3


def test_landmark_mode_box_from_keypoint_extent(tmp_path):
    # No box: extent of labelled keypoints x in [40, 80], y in [50, 70] -> box (40, 50, 40, 20);
    # the unlabelled (0, 0) point does not count.
    kps = [(40, 50, 2), (80, 70, 2), (0, 0, 0)]
    ann = _ann(1, 1, kps, None)
    del ann["bbox"]
    ann_file, img_dir = write_fixture(tmp_path, [ann])
    ds = TopDownDataset(ann_file, img_dir, (32, 32), train=False, bbox_padding=1.0)
    s = ds[0]
    torch.testing.assert_close(s["bbox"], torch.tensor([40.0, 50, 40, 20]))
    # Square input: crop 40 x 40 px around (60, 60), k = 0.8: (40, 50) -> (-20*0.8 + 15.5, -10*0.8 + 15.5).
    torch.testing.assert_close(s["keypoints"][:2], torch.tensor([[-0.5, 7.5], [31.5, 23.5]]))
    assert s["area"].item() == 800  # derived from the box when the annotation has no area


def test_collate_and_build_dataset_from_config(tmp_path):
    from kpdet.config import load_config

    ann_file, img_dir = _one_instance(tmp_path, np.random.default_rng(3))
    cfg = load_config(None, [f"data.train.ann_file={ann_file}", f"data.train.img_dir={img_dir}",
                             "data.flip_pairs=[[0,2]]", "data.aug.rotation=0.0", "data.bbox_padding=1.5"])
    ds = build_dataset(cfg.data.train, cfg.data, cfg.model.input_size, train=True)
    assert ds.spec.flip_index == (2, 1, 0) and ds.aug["rotation"] == 0.0 and ds.bbox_padding == 1.5
    batch = default_collate([ds[0], ds[0]])
    assert batch["image"].shape == (2, 3, 256, 192) and batch["keypoints"].shape == (2, 3, 2)
    assert batch["image_id"].dtype == torch.int64 and batch["crop_to_image"].shape == (2, 2, 3)


@pytest.mark.skipif(not OPENFIELD.is_dir(), reason="shared openfield data not present")
def test_openfield_real_data():
    ds = TopDownDataset(OPENFIELD / "train.json", OPENFIELD / "images", (192, 256), train=False)
    assert ds.spec.names == ("snout", "leftear", "rightear", "tailbase")
    assert ds.spec.flip_index == (0, 2, 1, 3)  # leftear <-> rightear
    assert len(ds) == 104
    s = ds[0]
    assert s["image"].shape == (3, 256, 192)
    # First annotation: snout at (21.521, 265.428), box (0, 107.4, 132.41, 203.84); the crop maps it back.
    torch.testing.assert_close(s["image_keypoints"][0], torch.tensor([21.521, 265.428, 2.0]))
    A = s["crop_to_image"].double()
    back = s["keypoints"].double() @ A[:, :2].T + A[:, 2]
    torch.testing.assert_close(back, s["image_keypoints"][:, :2].double(), atol=2e-3, rtol=0)
    assert (s["keypoints"] >= -0.5).all() and (s["keypoints"][:, 0] <= 191.5).all()
    assert s["visible"].tolist() == [1.0] * 4
