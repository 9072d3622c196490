"""The synthetic dataset: determinism, valid COCO, occlusion/out-of-image labels, keypoints on bodies."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from kpdet.data import synthetic as syn
from kpdet.keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON

NUM_TRAIN, NUM_VAL = 24, 6


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "seed0"
    syn.generate_synthetic(root, num_train=NUM_TRAIN, num_val=NUM_VAL, seed=0, workers=1)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_worker_count(dataset, tmp_path):
    # 24 > 16 images, so workers=2 really goes through the process pool.
    syn.generate_synthetic(tmp_path / "again", num_train=NUM_TRAIN, num_val=NUM_VAL, seed=0, workers=2)
    first, second = _files(dataset), _files(tmp_path / "again")
    assert list(first) == list(second)
    assert len(first) == NUM_TRAIN + NUM_VAL + 2  # images + two JSON files
    assert all(first[name] == second[name] for name in first)


def test_other_seed_other_data(dataset, tmp_path):
    syn.generate_synthetic(tmp_path / "s1", num_train=4, num_val=1, seed=1, workers=1)
    other = json.loads((tmp_path / "s1" / "train.json").read_text())
    mine = json.loads((dataset / "train.json").read_text())
    assert other["annotations"][0]["keypoints"] != mine["annotations"][0]["keypoints"]
    first_image = "images/train/000001.jpg"
    assert (tmp_path / "s1" / first_image).read_bytes() != (dataset / first_image).read_bytes()


@pytest.mark.parametrize("split, count", [("train", NUM_TRAIN), ("val", NUM_VAL)])
def test_valid_coco_keypoints(dataset, split, count):
    from pycocotools.coco import COCO

    coco = COCO(str(dataset / f"{split}.json"))
    (category,) = coco.loadCats(coco.getCatIds())
    assert category["name"] == "person" and category["id"] == 1
    assert tuple(category["keypoints"]) == COCO_KEYPOINT_NAMES
    assert [tuple(p) for p in category["skeleton"]] == list(COCO_SKELETON)
    images = coco.dataset["images"]
    assert len(images) == count and len({im["id"] for im in images}) == count
    ann_ids = [a["id"] for a in coco.dataset["annotations"]]
    assert len(ann_ids) == len(set(ann_ids)) >= count  # every image holds at least one figure
    for image in images:
        assert image["file_name"].startswith(f"{split}/")
        pixels = cv2.imread(str(dataset / "images" / image["file_name"]))
        assert pixels.shape == (image["height"], image["width"], 3)
        assert 280 <= image["width"] <= 360 and 210 <= image["height"] <= 270
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            _check_annotation(ann, image["width"], image["height"])


def _check_annotation(ann: dict, width: int, height: int):
    assert ann["category_id"] == 1 and ann["iscrowd"] == 0
    kp = np.array(ann["keypoints"], dtype=float).reshape(-1, 3)
    assert kp.shape == (17, 3) and set(kp[:, 2]) <= {0, 1, 2}
    assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum()) > 0
    assert (kp[kp[:, 2] == 0, :2] == 0).all()  # COCO: unlabelled points are (0, 0, 0)
    shown = kp[kp[:, 2] > 0]
    assert (shown[:, 0] >= 0).all() and (shown[:, 0] <= width - 1).all()
    assert (shown[:, 1] >= 0).all() and (shown[:, 1] <= height - 1).all()
    x, y, w, h = ann["bbox"]
    assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= width and y + h <= height
    # Labelled keypoints lie on the figure's drawn pixels, hence inside its box (pixel centres).
    assert (shown[:, 0] >= x - 0.5).all() and (shown[:, 0] <= x + w - 0.5).all()
    assert (shown[:, 1] >= y - 0.5).all() and (shown[:, 1] <= y + h - 0.5).all()
    assert 0 < ann["area"] <= w * h


def test_occluded_and_out_of_image_keypoints_occur(dataset):
    anns = json.loads((dataset / "train.json").read_text())["annotations"]
    v = np.array([a["keypoints"][2::3] for a in anns])
    assert (v == 1).any(), "no keypoint hidden behind a later figure"
    assert (v == 0).any(), "no figure cut by the image border"
    assert (v == 2).mean() > 0.6  # but most keypoints are visible


def test_visibility_and_box_from_owner_map():
    # A 10x8 image; figure 1 covers rows 3..5, cols 2..6 (5 x 3 = 15 px); figure 2 (drawn later)
    # covers the pixel (x=4, y=4) and figure 1's keypoint there becomes v=1.
    mask = np.zeros((8, 10), np.uint8)
    mask[3:6, 2:7] = 1
    owner = mask.copy()
    owner[4, 4] = 2
    kp = np.zeros((17, 2))
    kp[:] = (2.0, 3.0)
    kp[0] = (4.2, 3.8)  # rounds to pixel (4, 4): owned by figure 2 -> v=1
    kp[1] = (-0.4, 3.0)  # left of pixel centre 0 -> outside -> (0, 0, 0)
    kp[2] = (9.0, 7.0)  # the last pixel centre: inside
    ann = syn._annotation(kp, mask, owner, fid=1, facing=1)
    triples = np.array(ann["keypoints"]).reshape(17, 3)
    assert triples[0].tolist() == [4.2, 3.8, 1]
    assert triples[1].tolist() == [0, 0, 0]
    assert triples[2].tolist() == [9.0, 7.0, 2]
    assert ann["num_keypoints"] == 16
    assert ann["bbox"] == [2.0, 3.0, 5.0, 3.0] and ann["area"] == 15.0
    # The same keypoint seen as figure 2's own is visible.
    assert syn._annotation(kp, mask, owner, fid=2, facing=1)["keypoints"][2] == 2


def test_left_is_on_the_viewers_right_when_facing_the_camera():
    rng = np.random.default_rng(3)
    for _ in range(50):
        facing = 1 if rng.random() < 0.5 else -1
        pose = syn._sample_pose(rng)
        lengths = dict(syn._LENGTHS)
        kp, _ = syn._body_points(pose, lengths, facing)
        for left, right in ((syn.L_SH, syn.R_SH), (syn.L_HIP, syn.R_HIP), (syn.L_EYE, syn.R_EYE),
                            (syn.L_EAR, syn.R_EAR)):
            assert facing * (kp[left, 0] - kp[right, 0]) > 0


def test_every_keypoint_lands_on_its_figures_pixels():
    rng = np.random.default_rng(5)
    light = np.array([0.0, -1.0])
    for i in range(40):
        img = np.zeros((240, 320, 3), np.uint8)
        fig = syn._sample_figure(rng, height_px=float(rng.uniform(60, 200)), away_fraction=0.3)
        offset = np.array([160.0, 130.0])
        fig["kp"] = fig["kp"] + offset
        fig["head"]["centre"] = fig["head"]["centre"] + offset
        mask = syn._draw_figure(img, fig, light)
        inside = (fig["kp"] >= 0).all(1) & (fig["kp"] <= [319, 239]).all(1)
        px = np.round(fig["kp"][inside]).astype(int)
        assert mask[px[:, 1], px[:, 0]].all(), f"figure {i}: a keypoint is off the body"


def test_keypoints_sit_on_bodies_not_on_background(dataset):
    """Colour at visible keypoints is far from the image's background colour; background pixels are not."""
    coco = json.loads((dataset / "train.json").read_text())
    kp_dist, bg_dist = [], []
    for image in coco["images"]:
        pixels = cv2.imread(str(dataset / "images" / image["file_name"])).astype(float)
        background = np.ones(pixels.shape[:2], bool)
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        for a in anns:
            x, y, w, h = (int(v) for v in a["bbox"])
            background[y:y + h, x:x + w] = False
        if background.sum() < 1000:
            continue
        bg_mean = pixels[background].mean(0)
        bg_dist.append(np.linalg.norm(pixels[background] - bg_mean, axis=1).mean())
        for a in anns:
            kp = np.array(a["keypoints"]).reshape(17, 3)
            for x, y in kp[kp[:, 2] == 2, :2]:
                kp_dist.append(np.linalg.norm(pixels[int(round(y)), int(round(x))] - bg_mean))
    assert len(kp_dist) > 100
    assert np.mean(kp_dist) > 1.5 * np.mean(bg_dist)


def test_ensure_synthetic_generates_once_and_atomically(tmp_path):
    root = tmp_path / "data" / "synthetic"
    info = syn.ensure_synthetic(root, num_train=3, num_val=2, seed=0, workers=1)
    assert info["generated"] and Path(info["train_ann"]).is_file() and Path(info["val_ann"]).is_file()
    assert len(list((root / "images" / "train").glob("*.jpg"))) == 3
    assert [p.name for p in root.parent.iterdir()] == ["synthetic"]  # no temporary folder left
    stamp = (root / "train.json").stat().st_mtime_ns
    again = syn.ensure_synthetic(root, num_train=3, num_val=2, seed=0, workers=1)
    assert not again["generated"] and (root / "train.json").stat().st_mtime_ns == stamp
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "train.json").write_text("{}")  # val.json missing: incomplete
    with pytest.raises(FileExistsError):
        syn.ensure_synthetic(tmp_path / "partial", num_train=1, num_val=1)
