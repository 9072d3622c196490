"""Embedded synthetic point-object dataset: many small objects of a few classes per image.

Each image (`size` x `size` px, default 128) holds 0 to `max_objects` (default 100) objects
of three classes, one COCO category each with a single keypoint "center" (point objects,
CONTRACT.md): `disc` (a filled, shaded disc), `ring` (an annulus) and `cross` (a plus sign),
radius 2.5-5 px, random grey level against the local background. About a third of the objects
are placed touching an earlier one (centre distance = sum of the radii). Distractors that are
not objects: bars (lines 10-30 px long), large faint blobs, and specks of 1 px. Then a
Gaussian blur (sigma 0-1.2 px) and Gaussian noise (std 0-12 grey levels), as in microscopy.

Conventions (COCO): the keypoint is the object's centre, drawn at sub-pixel precision (cv2
fixed point, 1/16 px) so that pixel centres sit at integer coordinates; v = 2 for every
object (objects are drawn fully inside the image); bbox = the object's square extent.
Every image comes from its own seed (seed, split, index), so the output does not depend on
how many processes draw it. `data.synthetic.kind: points` makes the configs generate it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

CLASSES = ("disc", "ring", "cross")
_SPLIT_ID = {"train": 0, "val": 1}
_SHIFT = 4  # cv2 fixed-point bits
_ONE = 1 << _SHIFT


def _fx(value: float) -> int:
    return int(round(value * _ONE))


def _draw_object(img: np.ndarray, kind: str, centre: np.ndarray, radius: float, grey: int) -> None:
    import cv2

    c = (_fx(centre[0]), _fx(centre[1]))
    if kind == "disc":
        cv2.circle(img, c, _fx(radius), grey, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(img, c, _fx(radius * 0.45), min(255, grey + 40), -1, cv2.LINE_AA, _SHIFT)
    elif kind == "ring":
        cv2.circle(img, c, _fx(radius * 0.75), grey, max(1, int(round(radius * 0.5))), cv2.LINE_AA, _SHIFT)
    else:  # cross
        arm, width = radius, max(1, int(round(radius * 0.55)))
        for dx, dy in ((arm, 0), (0, arm)):
            p0 = (_fx(centre[0] - dx), _fx(centre[1] - dy))
            p1 = (_fx(centre[0] + dx), _fx(centre[1] + dy))
            cv2.line(img, p0, p1, grey, width, cv2.LINE_AA, _SHIFT)


def _place(rng, placed: list, size: int, radius: float) -> np.ndarray | None:
    """A centre for a new object: touching an earlier one (a third of the time) or free, never
    overlapping by more than touching; None when 30 tries fail (a full image)."""
    margin = radius + 1.0
    for _ in range(30):
        if placed and rng.random() < 1 / 3:
            other, r_other = placed[rng.integers(len(placed))]
            angle = rng.uniform(0, 2 * np.pi)
            centre = other + (r_other + radius) * np.array([np.cos(angle), np.sin(angle)])
        else:
            centre = rng.uniform(margin, size - 1 - margin, size=2)
        if not (margin <= centre[0] <= size - 1 - margin and margin <= centre[1] <= size - 1 - margin):
            continue
        if all(np.linalg.norm(centre - c) >= r + radius - 1e-6 for c, r in placed):
            return centre
    return None


def _distractors(rng, img: np.ndarray, size: int) -> None:
    import cv2

    for _ in range(rng.integers(0, 6)):  # bars: long thin lines, not objects
        p0 = rng.uniform(0, size, 2)
        angle, length = rng.uniform(0, np.pi), rng.uniform(10, 30)
        p1 = p0 + length * np.array([np.cos(angle), np.sin(angle)])
        cv2.line(img, (_fx(p0[0]), _fx(p0[1])), (_fx(p1[0]), _fx(p1[1])), int(rng.integers(60, 220)),
                 1, cv2.LINE_AA, _SHIFT)
    for _ in range(rng.integers(0, 3)):  # large faint blobs
        c = rng.uniform(0, size, 2)
        cv2.circle(img, (_fx(c[0]), _fx(c[1])), _fx(rng.uniform(12, 25)), int(rng.integers(70, 130)), -1,
                   cv2.LINE_AA, _SHIFT)
    for _ in range(rng.integers(0, 15)):  # specks
        x, y = rng.integers(0, size, 2)
        img[y, x] = int(rng.integers(150, 256))


def render_points_image(seed, size: int = 128, max_objects: int = 100) -> tuple[np.ndarray, list[dict]]:
    """One grey image [size, size] uint8 (drawn as 3 equal channels by the writer) and its
    annotations: [{"category_id", "keypoints": [x, y, 2], "bbox", "area", ...}]."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((size, size), int(rng.integers(20, 90)), np.uint8)
    _distractors(rng, img, size)
    placed, anns = [], []
    for _ in range(int(rng.integers(0, max_objects + 1))):
        radius = float(rng.uniform(2.5, 5.0))
        centre = _place(rng, placed, size, radius)
        if centre is None:
            break
        label = int(rng.integers(len(CLASSES)))
        _draw_object(img, CLASSES[label], centre, radius, int(rng.integers(140, 256)))
        placed.append((centre, radius))
        x, y = float(centre[0]), float(centre[1])
        box = [round(v, 3) for v in (x - radius, y - radius, 2 * radius, 2 * radius)]
        anns.append({"category_id": label + 1, "keypoints": [round(x, 3), round(y, 3), 2], "num_keypoints": 1,
                     "bbox": box, "area": round(4 * radius * radius, 3), "iscrowd": 0})
    sigma = rng.uniform(0, 1.2)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.normal(0, rng.uniform(0, 12), img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8), anns


def categories() -> list[dict]:
    return [{"id": i + 1, "name": name, "supercategory": "point", "keypoints": ["center"], "skeleton": []}
            for i, name in enumerate(CLASSES)]


def _write_split(root: Path, split: str, count: int, seed: int, size: int, max_objects: int) -> dict:
    import cv2

    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        img, anns = render_points_image((seed, _SPLIT_ID[split], i), size, max_objects)
        name = f"{split}/{i + 1:06d}.png"  # lossless: JPEG blocks would blur 3 px objects further
        if not cv2.imwrite(str(root / "images" / name), img):
            raise OSError(f"could not write {root / 'images' / name}")
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        annotations += [{"id": len(annotations) + 1, "image_id": i + 1, **a} for a in anns]
    coco = {"info": {"description": f"kpdet synthetic point objects, split {split}, seed {seed}"},
            "images": images, "annotations": annotations, "categories": categories()}
    (root / f"{split}.json").write_text(json.dumps(coco))
    return coco


def generate_points(root, num_train: int = 2000, num_val: int = 200, seed: int = 0, size: int = 128,
                    max_objects: int = 100) -> dict:
    """Writes root/train.json, root/val.json and PNGs under root/images/{train,val}/ (file_name is
    relative to root/images). Returns paths, counts and seconds, as `synthetic.generate_synthetic`."""
    start, root = time.perf_counter(), Path(root)
    counts = {}
    for split, count in (("train", num_train), ("val", num_val)):
        coco = _write_split(root, split, count, seed, size, max_objects)
        counts[split] = (len(coco["images"]), len(coco["annotations"]))
    return {"root": str(root), "img_dir": str(root / "images"), "train_ann": str(root / "train.json"),
            "val_ann": str(root / "val.json"), "num_images": {k: v[0] for k, v in counts.items()},
            "num_instances": {k: v[1] for k, v in counts.items()}, "seconds": time.perf_counter() - start}
