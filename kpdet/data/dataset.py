"""TopDownDataset: one crop per annotated instance of a COCO keypoints file.

Per sample: box -> centre/scale (padded, widened to the input's aspect ratio),
optional random scale / rotation / shift / flip (train only), affine crop with
OpenCV, photometric augmentation with albumentations (train only), ImageNet
normalisation. Keypoints follow every geometric step through the same matrix.

Randomness is drawn from torch's generator (one 62-bit seed per sample feeding a
numpy Generator and albumentations), so samples are reproducible from
`torch.manual_seed`, and DataLoader workers (seeded by torch) differ.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from kpdet.data import coco as coco_io
from kpdet.data import transforms as T

log = logging.getLogger(__name__)

_MAX_LISTED = 50  # problems spelled out in one error message; the rest are counted


class TopDownDataset(torch.utils.data.Dataset):
    """Top-down crops of the instances of one category of a COCO keypoints file.

    Kept instances: non-crowd annotations of the category with at least one labelled
    keypoint (v > 0, counted from `keypoints`, not trusted from `num_keypoints`). The
    crop comes from `bbox`, or, when an annotation has no box (landmark mode), from
    the extent of its labelled keypoints, padded like a box.

    `attribute` = (field, classes): each kept annotation must hold `field`, an integer class in
    [0, classes) (a per-instance ordinal attribute, model.attribute); a missing or bad one is an
    invalid annotation like any other (error naming file, annotation and field, or skipped with
    skip_invalid). `attribute_permutation` (a permutation of 0..classes-1, or None) relabels the
    classes: an annotation of class c yields `permutation[c]` (a class order hidden from the
    model, model.attribute.class_permutation); evaluation maps predictions back with it.

    Each item is a dict of tensors (see `__getitem__`). `crop_to_image` is exact for
    augmented samples too; for a flipped sample, crop keypoint k is annotation
    keypoint `spec.flip_index[k]`.
    """

    def __init__(
        self, ann_file, img_dir, input_size=(192, 256), *, train: bool, bbox_padding: float = 1.25,
        flip_prob: float = 0.5, scale_factor: float = 0.25, rotation: float = 30.0,
        rotation_prob: float = 0.6, shift_factor: float = 0.0, photometric: bool = True,
        category_id: int | None = None, flip_pairs=None, sigmas=None, skip_invalid: bool = False,
        attribute: tuple[str, int] | None = None, attribute_permutation=None,
    ):
        self.ann_file, self.img_dir = str(ann_file), Path(img_dir)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.train, self.bbox_padding = train, bbox_padding
        self.aug = dict(flip_prob=flip_prob, scale_factor=scale_factor, rotation=rotation,
                        rotation_prob=rotation_prob, shift_factor=shift_factor)
        self.photometric = photometric
        self.attribute = (str(attribute[0]), int(attribute[1])) if attribute is not None else None
        self.attribute_permutation = _permutation(attribute_permutation, self.attribute)
        data = coco_io.read_json(ann_file)
        category = coco_io.select_category(data, category_id, self.ann_file)
        self.category_id = category["id"]
        self.spec = coco_io.keypoint_spec(category, flip_pairs, sigmas)
        bad = self._find_problems(data, category, skip_invalid)
        if bad:  # the ground truth that evaluation sees excludes what training skips
            data = {**data, "annotations": [a for a in data["annotations"] if a.get("id") not in bad]}
        self.num_skipped = len(bad)  # invalid annotations left out at construction
        self.skip_invalid = skip_invalid
        self.unreadable: set[int] = set()  # sample indices whose image failed to load (this process)
        self.coco = coco_io.coco_from_dict(data)
        self.samples = self._collect(data)
        self._photometric_transform = None

    def _find_problems(self, data: dict, category: dict, skip_invalid: bool) -> dict:
        """{annotation id: message} of bad annotations; raises listing them all unless skip_invalid."""
        bad = coco_io.validate_annotations(data, category, self.ann_file)
        if self.attribute is not None:
            field, classes = self.attribute
            for ann_id, message in coco_io.attribute_problems(data, category, field, classes,
                                                              self.ann_file).items():
                bad.setdefault(ann_id, message)
        missing = coco_io.missing_images(data["images"], self.img_dir, self.ann_file)
        for ann in data["annotations"]:
            if ann.get("image_id") in missing and ann.get("category_id") == category["id"]:
                bad.setdefault(ann.get("id"), missing[ann["image_id"]] + f" (annotation {ann.get('id')})")
        if bad and not skip_invalid:
            lines = list(bad.values())
            more = f"\n... and {len(lines) - _MAX_LISTED} more" if len(lines) > _MAX_LISTED else ""
            raise coco_io.DatasetError(
                f"{len(lines)} invalid annotation(s) in {self.ann_file} "
                "(set data.skip_invalid=true to skip them):\n" + "\n".join(lines[:_MAX_LISTED]) + more
            )
        if bad:
            log.warning("%s: skipping %d invalid annotation(s): %s",
                        self.ann_file, len(bad), "; ".join(bad.values()))
        return bad

    def _collect(self, data: dict) -> list[tuple[dict, dict]]:
        """(annotation, image info) of every kept instance, in file order."""
        images = {img["id"]: img for img in data["images"]}
        samples = []
        for ann in data["annotations"]:
            if ann.get("category_id") != self.category_id or ann.get("iscrowd", 0):
                continue
            if not np.any(np.asarray(ann["keypoints"], dtype=np.float64)[2::3] > 0):
                continue
            samples.append((ann, images[ann["image_id"]]))
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """image [3, H, W] float32 (normalised RGB); keypoints [K, 2] crop px; visible [K];
        image_keypoints [K, 3] (x, y, v) image px; bbox [4] (x, y, w, h) image px;
        crop_to_image [2, 3]; image_id, ann_id int64; area float32; with `attribute` (field,
        classes), also attribute int64: the annotation's class (flips leave it as it is).

        An image that cannot be read raises DatasetError; with skip_invalid the failure is
        logged and the next readable sample is returned instead (a batch needs a sample).
        """
        for offset in range(len(self.samples)):
            candidate = (index + offset) % len(self.samples)
            if candidate in self.unreadable:
                continue
            try:
                return self._load(candidate)
            except coco_io.DatasetError as error:
                if not self.skip_invalid:
                    raise
                self.unreadable.add(candidate)
                log.warning("skip_invalid: %s (%d unreadable so far)", error, len(self.unreadable))
        raise coco_io.DatasetError(f"{self.ann_file}: no readable image among {len(self.samples)} samples")

    def _load(self, index: int) -> dict[str, torch.Tensor]:
        ann, info = self.samples[index]
        image = coco_io.read_image(self.img_dir / info["file_name"], info["id"],
                                   (info.get("width"), info.get("height")))
        keypoints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        box = instance_box(ann, keypoints)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        params = T.sample_aug_params(rng, **self.aug) if self.train else T.AugParams()
        center, scale = T.box_to_center_scale(box, self.input_size[0] / self.input_size[1], self.bbox_padding)
        matrix = T.augmented_crop_matrix(center, scale, self.input_size, params)
        crop = T.warp_image(image, matrix, self.input_size)
        if self.train and self.photometric:
            crop = self._photometric(crop, int(rng.integers(2**31)))
        points = T.transform_points(keypoints[:, :2], matrix)
        visible = (keypoints[:, 2] > 0).astype(np.float32)
        if params.flip:
            points = T.flip_keypoint_order(points, self.spec.flip_index)
            visible = T.flip_keypoint_order(visible, self.spec.flip_index)
        sample = {
            "image": torch.from_numpy(T.normalize_image(crop)),
            "keypoints": torch.from_numpy(points.astype(np.float32)),
            "visible": torch.from_numpy(visible),
            "image_keypoints": torch.from_numpy(keypoints.astype(np.float32)),
            "bbox": torch.tensor(box, dtype=torch.float32),
            "crop_to_image": torch.from_numpy(T.invert_affine(matrix).astype(np.float32)),
            "image_id": torch.tensor(int(info["id"]), dtype=torch.int64),
            "ann_id": torch.tensor(int(ann["id"]), dtype=torch.int64),
            "area": torch.tensor(float(ann.get("area") or box[2] * box[3]), dtype=torch.float32),
        }
        if self.attribute is not None:
            value = int(ann[self.attribute[0]])
            if self.attribute_permutation is not None:
                value = self.attribute_permutation[value]
            sample["attribute"] = torch.tensor(value, dtype=torch.int64)
        return sample

    def _photometric(self, crop: np.ndarray, seed: int) -> np.ndarray:
        if self._photometric_transform is None:  # built lazily: albumentations is a heavy import
            self._photometric_transform = T.build_photometric()
        self._photometric_transform.set_random_seed(seed)
        return self._photometric_transform(image=crop)["image"]


def _permutation(permutation, attribute) -> tuple[int, ...] | None:
    if permutation is None:
        return None
    permutation = tuple(int(c) for c in permutation)
    if attribute is None or sorted(permutation) != list(range(attribute[1])):
        classes = attribute[1] if attribute is not None else "no attribute"
        raise ValueError(f"attribute_permutation {list(permutation)} is not a permutation of the classes "
                         f"({classes})")
    return permutation


def instance_box(ann: dict, keypoints: np.ndarray) -> list[float]:
    """The annotation's box (x, y, w, h), or, without one, the extent of its labelled keypoints.

    keypoints: [K, 3] (x, y, v). A keypoint-extent box spans the extreme keypoints'
    coordinates, at least 1 px on each side (a single labelled keypoint).
    """
    bbox = ann.get("bbox")
    if bbox:
        return [float(v) for v in bbox]
    labelled = keypoints[keypoints[:, 2] > 0, :2]
    (x0, y0), (x1, y1) = labelled.min(axis=0), labelled.max(axis=0)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return [cx - w / 2.0, cy - h / 2.0, w, h]


def build_dataset(split_cfg, data_cfg, input_size, train: bool,
                  attribute: tuple[str, int] | None = None, attribute_permutation=None) -> TopDownDataset:
    """TopDownDataset of one config split (`data.<split>`) with the `data` section's settings;
    `attribute`: (annotation field, classes) of a per-instance class to read, or None;
    `attribute_permutation`: its classes relabelled (class c -> permutation[c]), or None."""
    aug = data_cfg.aug
    flip_pairs = [list(pair) for pair in data_cfg.flip_pairs] if data_cfg.flip_pairs else None
    sigmas = list(data_cfg.oks_sigmas) if data_cfg.oks_sigmas else None
    return TopDownDataset(
        split_cfg.ann_file, split_cfg.img_dir, tuple(input_size), train=train,
        bbox_padding=data_cfg.bbox_padding, flip_prob=aug.flip_prob, scale_factor=aug.scale_factor,
        rotation=aug.rotation, rotation_prob=aug.rotation_prob, shift_factor=aug.shift_factor,
        photometric=aug.photometric, category_id=data_cfg.category_id, flip_pairs=flip_pairs,
        sigmas=sigmas, skip_invalid=data_cfg.skip_invalid, attribute=attribute,
        attribute_permutation=attribute_permutation,
    )
