"""Reading COCO keypoints files as found in the wild: loading, category choice, validation, images.

Every error names the file and the image or annotation id. `validate_annotations`
checks a whole file and returns every problem at once, so a user fixes them in
one pass (or sets `data.skip_invalid=true` to skip the listed annotations).

Image orientation (EXIF): cv2.imread/imdecode with IMREAD_COLOR apply the EXIF
orientation tag, i.e. they return the image as viewers and labelling tools show
it, and we take annotation coordinates to refer to that orientation. When the
JSON's `width`/`height` match only the raw stored pixel grid (the annotation was
made on the unrotated pixels, as with some older tools), the raw pixels are used
instead, so pixels and coordinates always agree. An orientation that keeps the
size (180 degrees, mirror) cannot be told apart this way and follows EXIF.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from kpdet.errors import UserError
from kpdet.keypoints import KeypointSpec


class DatasetError(UserError, ValueError):
    """A problem with an annotation file or an image; the message names the file and the id."""


def read_json(ann_file: str | os.PathLike) -> dict:
    """The parsed annotation file; a missing file or malformed JSON raises DatasetError naming it."""
    path = Path(ann_file)
    if not path.is_file():
        raise DatasetError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise DatasetError(f"malformed JSON in {path}: {error.msg} at {where}") from None
    except (UnicodeDecodeError, OSError) as error:
        raise DatasetError(f"cannot read annotation file {path}: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DatasetError(f"{path} is not a COCO annotation file: no 'annotations' list")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path} is not a COCO annotation file: no '{key}' list")
    return data


def coco_from_dict(data: dict):
    """A pycocotools COCO built from an already-parsed dict (without its index-building prints)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_coco_keypoints(ann_file: str | os.PathLike):
    """pycocotools COCO of `ann_file`, with errors that name the file (see `read_json`)."""
    return coco_from_dict(read_json(ann_file))


def select_category(data: dict, category_id: int | None, ann_file="") -> dict:
    """The category with id `category_id`, or the first one that has keypoint names."""
    with_keypoints = [c for c in data["categories"] if c.get("keypoints")]
    if category_id is None:
        if not with_keypoints:
            raise DatasetError(f"{ann_file}: no category has 'keypoints' names")
        return with_keypoints[0]
    for category in data["categories"]:
        if category.get("id") == category_id:
            if not category.get("keypoints"):
                raise DatasetError(f"{ann_file}: category {category_id} has no 'keypoints' names")
            return category
    known = [c.get("id") for c in with_keypoints]
    raise DatasetError(f"{ann_file}: no category with id {category_id}; categories with keypoints: {known}")


def keypoint_spec(category: dict, flip_pairs=None, sigmas=None) -> KeypointSpec:
    """KeypointSpec of a COCO category; config flip pairs / sigmas override the names' defaults."""
    return KeypointSpec.from_coco_category(category, flip_pairs=flip_pairs, sigmas=sigmas)


def _finite_numbers(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def annotation_problems(ann: dict, num_keypoints: int, image_ids: set) -> list[str]:
    """What is wrong with one annotation of the chosen category (empty list when it is fine).

    A missing or empty `bbox` is not a problem (landmark mode derives the box from
    the keypoints); a box with non-positive size or non-finite values is.
    """
    problems = []
    if ann.get("image_id") not in image_ids:
        problems.append(f"image_id {ann.get('image_id')} is not in 'images'")
    keypoints = ann.get("keypoints")
    if not isinstance(keypoints, list) or len(keypoints) != 3 * num_keypoints:
        size = len(keypoints) if isinstance(keypoints, list) else type(keypoints).__name__
        problems.append(f"'keypoints' has {size} values, expected 3 * {num_keypoints} for its category")
    elif not _finite_numbers(keypoints):
        problems.append("'keypoints' has NaN, infinite or non-numeric values")
    elif any(v not in (0, 1, 2) for v in keypoints[2::3]):
        problems.append("keypoint visibility flags must be 0, 1 or 2")
    bbox = ann.get("bbox")
    if bbox not in (None, []):
        if not isinstance(bbox, list) or len(bbox) != 4 or not _finite_numbers(bbox):
            problems.append(f"'bbox' {bbox} is not four finite numbers")
        elif bbox[2] <= 0 or bbox[3] <= 0:
            problems.append(f"'bbox' {bbox} has a negative or empty size")
    return problems


def validate_annotations(data: dict, category: dict, ann_file="") -> dict[int, str]:
    """{annotation id: message} for every bad non-crowd annotation of `category`.

    Crowd annotations are left to COCOeval and not checked.
    """
    image_ids = {img.get("id") for img in data["images"]}
    num_keypoints = len(category["keypoints"])
    bad = {}
    for ann in data["annotations"]:
        if ann.get("category_id") != category["id"] or ann.get("iscrowd", 0):
            continue
        problems = annotation_problems(ann, num_keypoints, image_ids)
        if problems:
            where = f"{ann_file}: annotation {ann.get('id')} (image {ann.get('image_id')})"
            bad[ann.get("id")] = f"{where}: " + "; ".join(problems)
    return bad


def attribute_problems(data: dict, category: dict, field: str, classes: int, ann_file="") -> dict[int, str]:
    """{annotation id: message} for non-crowd annotations of `category` with labelled keypoints
    (those a TopDownDataset keeps) whose `field` is missing or not an integer class in [0, classes)."""
    bad = {}
    for ann in data["annotations"]:
        if ann.get("category_id") != category["id"] or ann.get("iscrowd", 0):
            continue
        if not _has_labelled(ann):
            continue
        where = f"{ann_file}: annotation {ann.get('id')} (image {ann.get('image_id')})"
        if field not in ann:
            bad[ann.get("id")] = f"{where}: no attribute field {field!r} (model.attribute.field)"
            continue
        value = ann[field]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < classes:
            bad[ann.get("id")] = (f"{where}: attribute field {field!r} = {value!r} is not an integer class "
                                  f"in [0, {classes}) (model.attribute.classes={classes})")
    return bad


def _has_labelled(ann: dict) -> bool:
    """At least one keypoint with v > 0; a malformed list counts as True (validate_annotations
    reports it)."""
    try:
        return bool(np.any(np.asarray(ann["keypoints"], dtype=np.float64)[2::3] > 0))
    except (KeyError, TypeError, ValueError):
        return True


def missing_images(images: list[dict], img_dir, ann_file="") -> dict[int, str]:
    """{image id: message} for images whose file does not exist (cheap check before training)."""
    bad = {}
    for img in images:
        path = Path(img_dir) / str(img.get("file_name", ""))
        if not img.get("file_name") or not path.is_file():
            bad[img.get("id")] = f"{ann_file}: image {img.get('id')}: file not found: {path}"
    return bad


def _decode(data: np.ndarray, flags: int):
    import cv2

    return cv2.imdecode(data, flags)


def read_image(path: str | os.PathLike, image_id=None, expected_size=None) -> np.ndarray:
    """uint8 RGB [H, W, 3] of an image file (grayscale and RGBA become RGB).

    expected_size: (width, height) from the JSON, used to pick the orientation the
    annotations refer to (see the module docstring). Raises DatasetError naming the
    file and the image id for missing, unreadable, truncated or wrongly sized images.
    """
    import cv2

    where = f"image {image_id} ({path})"
    try:
        raw = np.fromfile(str(path), dtype=np.uint8)
    except OSError as error:
        raise DatasetError(f"cannot read {where}: {error.strerror or error}") from None
    # A JPEG has an end-of-image marker (FFD9); some decoders silently grey-pad a file cut
    # before it. Searched anywhere, not only at the end: valid files may carry trailers.
    if raw[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in raw.tobytes():
        raise DatasetError(f"truncated JPEG: {where} has no end-of-image marker")
    image = _decode(raw, cv2.IMREAD_COLOR) if raw.size else None
    if image is None:
        raise DatasetError(f"cannot decode {where}: not an image, or a truncated/corrupt file")
    if expected_size is not None and all(expected_size):
        image = _match_orientation(image, raw, tuple(int(v) for v in expected_size), where)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _match_orientation(image: np.ndarray, raw: np.ndarray, expected_wh, where: str) -> np.ndarray:
    import cv2

    if (image.shape[1], image.shape[0]) == expected_wh:
        return image
    unrotated = _decode(raw, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if unrotated is not None and (unrotated.shape[1], unrotated.shape[0]) == expected_wh:
        return unrotated
    raise DatasetError(
        f"{where} is {image.shape[1]}x{image.shape[0]} px but the annotation file says "
        f"{expected_wh[0]}x{expected_wh[1]}"
    )
