"""Whole-image samples (`data.mode: bottom_up`): the whole image, every instance at once, no boxes.

Each image of the file is one sample, letterboxed to the network input (the image's extent
[-0.5, w - 0.5] x [-0.5, h - 0.5] fitted inside the input, aspect kept, zeros around) with one
random scale / rotation / translation / flip (train only) applied to the image and to every
instance. Images with no instance are samples too: they train as negatives (all-background maps).

Tasks (`data.bottom_up.task`):
- `single`: one instance per image (DeepLabCut's whole-frame setting). The sample has the
  top-down layout (keypoints [K, 2], visible [K] in input px, image_keypoints [K, 3], bbox,
  ann_id, crop_to_image), so targets, decoding (the highest peak per channel), metrics and
  panels are the top-down ones; `bbox` is only read for PCK's normaliser, never to crop.
  An image with two or more instances is an error (or, with skip_invalid, keeps the first).
- `points`: point objects: annotations of every category with exactly one keypoint, one heatmap
  channel per category (sorted by category id). keypoints [M, 2] input px, visible [M],
  classes [M, C] one-hot (zero rows are padding), image_points [M, 2] image px and labels [M]
  (-1 = padding) for evaluation; M = data.bottom_up.max_instances.
- `pose`: many instances of one category (CenterNet's multi-person pose): keypoints [M, K, 2]
  and visible [M, K] in input px (flipped samples swap left/right), centres [M, 2] (the box
  centre, or the middle of the labelled keypoints without a box), present [M] (0 = padding).

Ignore mask: "ignore" [H_in, W_in] uint8 (1 = no loss there): the boxes of COCO crowd
annotations (`iscrowd`) and of instances with no labelled keypoint, warped like the image, as
CenterNet and HigherHRNet do: such regions are neither taught as objects nor as background.
What was masked or dropped is counted at construction (`counts`) and logged.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from kpdet.data import coco as coco_io
from kpdet.data import transforms as T
from kpdet.keypoints import KeypointSpec

log = logging.getLogger(__name__)

TASKS = ("single", "points", "pose")


def letterbox_matrix(width: int, height: int, input_size, params: T.AugParams | None = None) -> np.ndarray:
    """[2, 3] image px -> input px: the whole image fitted inside `input_size` (W, H), centred,
    aspect kept; then `params` (scale > 1 zooms out, rotation in degrees, shift as a fraction of
    the fitted size, flip) about the image centre. COCO pixel centres (transforms.py)."""
    box = [-0.5, -0.5, float(width), float(height)]  # continuous extent of the pixels
    center, scale = T.box_to_center_scale(box, input_size[0] / input_size[1], padding=1.0)
    return T.augmented_crop_matrix(center, scale, input_size, params or T.AugParams())


def region_mask(boxes: list, matrix: np.ndarray, input_size) -> np.ndarray:
    """uint8 [H, W] with 1 inside each COCO box (x, y, w, h, image px) after `matrix`."""
    import cv2

    mask = np.zeros((int(input_size[1]), int(input_size[0])), np.uint8)
    for x, y, w, h in boxes:
        # COCO box edges are continuous coordinates: a one-pixel box at column i is [i - 0.5, i + 0.5]
        corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)
        quad = T.transform_points(corners, matrix)
        cv2.fillPoly(mask, [np.round(quad * 16).astype(np.int32)], 1, shift=4)
    return mask


def point_categories(data: dict, ann_file: str = "") -> list[dict]:
    """Categories with exactly one keypoint name, sorted by id: one heatmap channel each."""
    found = [c for c in data["categories"] if len(c.get("keypoints") or []) == 1]
    found = sorted(found, key=lambda c: c["id"])
    if not found:
        raise coco_io.DatasetError(f"{ann_file}: no category has exactly one keypoint (point objects, "
                                   f"data.bottom_up.task=points); categories: "
                                   f"{[(c.get('id'), c.get('keypoints')) for c in data['categories']]}")
    return found


class WholeImageDataset(torch.utils.data.Dataset):
    """Whole images of a COCO keypoints file with all their instances (module docstring)."""

    def __init__(self, ann_file, img_dir, input_size=(256, 256), *, train: bool, task: str = "single",
                 flip_prob: float = 0.5, scale_factor: float = 0.25, rotation: float = 30.0,
                 rotation_prob: float = 0.6, shift_factor: float = 0.0, photometric: bool = True,
                 category_id: int | None = None, flip_pairs=None, sigmas=None, skip_invalid: bool = False,
                 max_instances: int = 128):
        if task not in TASKS:
            raise ValueError(f"data.bottom_up.task={task!r} is not one of {', '.join(TASKS)}")
        self.ann_file, self.img_dir, self.task = str(ann_file), Path(img_dir), task
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.train, self.photometric, self.max_instances = train, photometric, int(max_instances)
        self.aug = dict(flip_prob=flip_prob, scale_factor=scale_factor, rotation=rotation,
                        rotation_prob=rotation_prob, shift_factor=shift_factor)
        data = coco_io.read_json(ann_file)
        if task == "points":
            self.categories = point_categories(data, self.ann_file)
            names = tuple(str(c.get("name", c["id"])) for c in self.categories)
            self.spec = KeypointSpec(names, (), tuple(range(len(names))), tuple(sigmas or ()))
        else:
            self.categories = [coco_io.select_category(data, category_id, self.ann_file)]
            self.spec = coco_io.keypoint_spec(self.categories[0], flip_pairs, sigmas)
        self.category_id = self.categories[0]["id"]
        self.channel = {c["id"]: i for i, c in enumerate(self.categories)}
        bad = self._check(data, skip_invalid)
        data = {**data, "annotations": [a for a in data["annotations"] if a.get("id") not in bad]}
        self.coco = coco_io.coco_from_dict(data)
        self.counts = {"invalid": len(bad)}
        self.images = self._collect(data, skip_invalid)
        self._photometric_transform = None
        masked = any(self.counts[k] for k in ("invalid", "crowd_regions", "unlabelled_instances",
                                              "truncated_instances"))
        (log.warning if masked else log.info)("%s: %d whole images; masked, dropped and negative: %s",
                                              self.ann_file, len(self.images), self.counts)

    def _check(self, data: dict, skip_invalid: bool) -> set:
        bad: dict = {}
        for category in self.categories:
            bad.update(coco_io.validate_annotations(data, category, self.ann_file))
        missing = coco_io.missing_images(data["images"], self.img_dir, self.ann_file)
        if (bad or missing) and not skip_invalid:
            lines = list(bad.values()) + list(missing.values())
            raise coco_io.DatasetError(f"{len(lines)} problem(s) in {self.ann_file} (set "
                                       "data.skip_invalid=true to skip them):\n" + "\n".join(lines[:50]))
        if missing:
            data["images"] = [i for i in data["images"] if i.get("id") not in missing]
        return set(bad)

    def _collect(self, data: dict, skip_invalid: bool) -> list[tuple[dict, list, list]]:
        """(image info, kept instances, ignore boxes) per image, counting what is masked."""
        per_image = {img["id"]: (img, [], []) for img in data["images"]}
        for key in ("crowd_regions", "unlabelled_instances", "truncated_instances"):
            self.counts[key] = 0
        for ann in data["annotations"]:
            if ann.get("category_id") not in self.channel or ann.get("image_id") not in per_image:
                continue
            _, kept, ignore = per_image[ann["image_id"]]
            # crowd annotations are not validated: they may carry no keypoints at all
            labelled = np.any(np.asarray(ann.get("keypoints") or [], dtype=np.float64)[2::3] > 0)
            if ann.get("iscrowd", 0) or not labelled:
                key = "crowd_regions" if ann.get("iscrowd", 0) else "unlabelled_instances"
                self.counts[key] += 1
                if ann.get("bbox"):
                    ignore.append([float(v) for v in ann["bbox"]])
                continue
            kept.append(ann)
        limit = 1 if self.task == "single" else self.max_instances
        for img, kept, _ in per_image.values():
            if len(kept) > limit:
                self._too_many(img, len(kept), limit, skip_invalid)
                self.counts["truncated_instances"] += len(kept) - limit
                del kept[limit:]
        self.counts["negative_images"] = sum(not kept for _, kept, _ in per_image.values())
        return list(per_image.values())

    def _too_many(self, img: dict, count: int, limit: int, skip_invalid: bool) -> None:
        where = f"{self.ann_file}: image {img['id']} ({img.get('file_name')})"
        if self.task == "single" and not skip_invalid:
            raise coco_io.DatasetError(f"{where} has {count} instances, but data.bottom_up.task=single takes "
                                       "one per image (use task=points for point objects, or "
                                       "data.skip_invalid=true to keep the first)")
        log.warning("%s: %d instances, keeping the first %d", where, count, limit)

    def __len__(self) -> int:
        return len(self.images)

    seeded_index = True  # accepts (index, seed) from data.sampling.SeededSampler

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """One whole image (module docstring). `index` may be (index, seed): the sample's random
        draws then come from `seed`, not from torch's generator (data.sampling, loader workers)."""
        index, seed = index if isinstance(index, tuple) else (index, None)
        info, kept, ignore = self.images[index]
        image = coco_io.read_image(self.img_dir / info["file_name"], info["id"],
                                   (info.get("width"), info.get("height")))
        params, rng = T.AugParams(), None
        if self.train:  # evaluation draws nothing: validation (panels too) leaves torch's RNG alone
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ())) if seed is None else seed)
            params = T.sample_aug_params(rng, **self.aug)
        matrix = letterbox_matrix(image.shape[1], image.shape[0], self.input_size, params)
        crop = T.warp_image(image, matrix, self.input_size)
        if rng is not None and self.photometric:
            crop = self._photometric(crop, int(rng.integers(2**31)))
        sample = {
            "image": torch.from_numpy(T.normalize_image(crop)),
            "ignore": torch.from_numpy(region_mask(ignore, matrix, self.input_size)),
            "crop_to_image": torch.from_numpy(T.invert_affine(matrix).astype(np.float32)),
            "image_id": torch.tensor(int(info["id"]), dtype=torch.int64),
        }
        instances = {"single": self._single, "points": self._points, "pose": self._pose}[self.task]
        return {**sample, **instances(kept, matrix, params.flip)}

    def _single(self, kept: list, matrix: np.ndarray, flip: bool) -> dict[str, torch.Tensor]:
        """The one instance in top-down layout; a negative image gets invisible keypoints, ann_id -1."""
        from kpdet.data.dataset import instance_box

        K = self.spec.num_keypoints
        ann = kept[0] if kept else {"id": -1, "keypoints": [0.0] * 3 * K, "bbox": [0, 0, 1, 1], "area": 0.0}
        keypoints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        box = instance_box(ann, keypoints)
        points = T.transform_points(keypoints[:, :2], matrix)
        visible = (keypoints[:, 2] > 0).astype(np.float32)
        if flip:
            points = T.flip_keypoint_order(points, self.spec.flip_index)
            visible = T.flip_keypoint_order(visible, self.spec.flip_index)
        return {
            "keypoints": torch.from_numpy(points.astype(np.float32)), "visible": torch.from_numpy(visible),
            "image_keypoints": torch.from_numpy(keypoints.astype(np.float32)),
            "bbox": torch.tensor(box, dtype=torch.float32),
            "ann_id": torch.tensor(int(ann["id"]), dtype=torch.int64),
            "area": torch.tensor(float(ann.get("area") or box[2] * box[3]), dtype=torch.float32),
        }

    def _points(self, kept: list, matrix: np.ndarray, flip: bool) -> dict[str, torch.Tensor]:
        """Padded point objects: slots beyond the image's count have visible 0 and label -1."""
        M, C = self.max_instances, len(self.categories)
        image_points, visible = np.zeros((M, 2)), np.zeros(M, np.float32)
        labels, classes = np.full(M, -1, np.int64), np.zeros((M, C), np.float32)
        for i, ann in enumerate(kept):
            x, y, v = ann["keypoints"][:3]
            image_points[i], visible[i], labels[i] = (x, y), float(v > 0), self.channel[ann["category_id"]]
            classes[i, labels[i]] = 1.0
        points = T.transform_points(image_points, matrix)  # flip: one class per point, nothing to swap
        return {
            "keypoints": torch.from_numpy(points.astype(np.float32)), "visible": torch.from_numpy(visible),
            "classes": torch.from_numpy(classes), "labels": torch.from_numpy(labels),
            "image_points": torch.from_numpy(image_points.astype(np.float32)),
        }

    def _pose(self, kept: list, matrix: np.ndarray, flip: bool) -> dict[str, torch.Tensor]:
        """Padded instances of one category; slots beyond the image's count have present 0."""
        from kpdet.data.dataset import instance_box

        M, K = self.max_instances, self.spec.num_keypoints
        keypoints, centres, present = np.zeros((M, K, 3)), np.zeros((M, 2)), np.zeros(M, np.float32)
        for i, ann in enumerate(kept):
            keypoints[i] = np.asarray(ann["keypoints"], dtype=np.float64).reshape(K, 3)
            x, y, w, h = instance_box(ann, keypoints[i])
            centres[i], present[i] = (x + w / 2, y + h / 2), 1.0
        points = T.transform_points(keypoints[..., :2], matrix)
        visible = (keypoints[..., 2] > 0).astype(np.float32)
        if flip:
            points, visible = points[:, self.spec.flip_index], visible[:, self.spec.flip_index]
        return {
            "keypoints": torch.from_numpy(points.astype(np.float32)), "visible": torch.from_numpy(visible),
            "centres": torch.from_numpy(T.transform_points(centres, matrix).astype(np.float32)),
            "present": torch.from_numpy(present),
        }

    def _photometric(self, crop: np.ndarray, seed: int) -> np.ndarray:
        if self._photometric_transform is None:
            self._photometric_transform = T.build_photometric()
        self._photometric_transform.set_random_seed(seed)
        return self._photometric_transform(image=crop)["image"]


def build_whole_image_dataset(split_cfg, data_cfg, input_size, train: bool) -> WholeImageDataset:
    """WholeImageDataset of one config split with the `data` section's settings (data.bottom_up)."""
    aug, bu = data_cfg.aug, data_cfg.bottom_up
    flip_pairs = [list(pair) for pair in data_cfg.flip_pairs] if data_cfg.flip_pairs else None
    sigmas = list(data_cfg.oks_sigmas) if data_cfg.oks_sigmas else None
    return WholeImageDataset(
        split_cfg.ann_file, split_cfg.img_dir, tuple(input_size), train=train, task=bu.task,
        flip_prob=aug.flip_prob, scale_factor=aug.scale_factor, rotation=aug.rotation,
        rotation_prob=aug.rotation_prob, shift_factor=aug.shift_factor, photometric=aug.photometric,
        category_id=data_cfg.category_id, flip_pairs=flip_pairs, sigmas=sigmas,
        skip_invalid=data_cfg.skip_invalid, max_instances=bu.max_instances,
    )
