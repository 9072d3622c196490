"""Top-down geometry: box -> centre/scale, affine crop matrices, warping, flip, random augmentation.

Coordinate convention (COCO): pixel centres sit at integer coordinates, so pixel
(i, j) covers [i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]. A crop of centre c and
size s (image px, continuous) covers [c - s/2, c + s/2]; it maps onto the network
input [-0.5, W - 0.5] x [-0.5, H - 0.5], whose centre is ((W - 1)/2, (H - 1)/2).
With k = W / s_w (= H / s_h, the scale is widened to the input's aspect ratio):

    crop = T((W - 1)/2, (H - 1)/2) . R(angle) . k . T(-c) . image        (3x3 homogeneous)
    flipped crop: x' = W - 1 - x (mirror about the crop's centre column)

All matrices are float64 [2, 3] mapping column vectors [x, y, 1] of one frame to
the other, the convention of cv2.warpAffine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # RGB, of [0, 1] values
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def box_to_center_scale(bbox, aspect_ratio: float, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """COCO box (x, y, w, h) in image px -> centre [2] and crop size [2] (w, h) in image px.

    The box is padded by `padding` on each axis, then its shorter side (relative to
    `aspect_ratio` = W / H of the network input) is widened so that w / h == aspect_ratio:
    the whole box stays inside the crop and the image is not stretched.
    """
    x, y, w, h = (float(v) for v in bbox[:4])
    # The box spans [x, x + w] in continuous coords; its centre is x + w/2 (COCO box edges,
    # not pixel centres: a box of one pixel at column i is [i - 0.5, i + 0.5]).
    center = np.array([x + w / 2.0, y + h / 2.0])
    w, h = w * padding, h * padding
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h])


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


def crop_matrix(center, scale, output_size, rotation: float = 0.0, flip: bool = False) -> np.ndarray:
    """[2, 3] affine from image px to crop px (see the module docstring).

    center: [2] image px; scale: [2] crop size (w, h) in image px; output_size: (W, H);
    rotation: degrees, positive = the content turns counter-clockwise on screen (y down);
    flip: mirror the crop horizontally (x' = W - 1 - x).
    """
    W, H = output_size
    k = W / float(scale[0])  # == H / scale[1] for an aspect-matched scale
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta), np.sin(theta)
    # On screen (y down), [[cos, sin], [-sin, cos]] turns content counter-clockwise.
    linear = k * np.array([[cos, sin], [-sin, cos]])
    out_center = np.array([(W - 1) / 2.0, (H - 1) / 2.0])
    matrix = np.hstack([linear, (out_center - linear @ np.asarray(center, dtype=np.float64))[:, None]])
    if flip:
        matrix = (_homogeneous(np.array([[-1.0, 0.0, W - 1.0], [0.0, 1.0, 0.0]])) @ _homogeneous(matrix))[:2]
    return matrix


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a [2, 3] affine (crop -> image when given image -> crop)."""
    return np.linalg.inv(_homogeneous(np.asarray(matrix, dtype=np.float64)))[:2]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """points [..., 2] (x, y) -> matrix @ [x, y, 1], same shape."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size) -> np.ndarray:
    """Crop [H_img, W_img, C] uint8 -> [H, W, C] with bilinear sampling, zeros outside the image."""
    import cv2

    return cv2.warpAffine(
        image, matrix, (int(output_size[0]), int(output_size[1])),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )


@dataclass(frozen=True)
class AugParams:
    """One random draw of the geometric augmentation."""

    scale: float = 1.0  # crop size multiplier (> 1 zooms out)
    rotation: float = 0.0  # degrees
    shift: tuple[float, float] = (0.0, 0.0)  # centre shift, fraction of the crop size (w, h)
    flip: bool = False


def sample_aug_params(
    rng: np.random.Generator, *, flip_prob: float, scale_factor: float, rotation: float,
    rotation_prob: float, shift_factor: float,
) -> AugParams:
    """Scale ~ U[1 - f, 1 + f], rotation ~ U[-r, r] with probability rotation_prob,
    shift ~ U[-s, s] per axis, flip with probability flip_prob."""
    scale = rng.uniform(1.0 - scale_factor, 1.0 + scale_factor)
    angle = rng.uniform(-rotation, rotation) if rng.random() < rotation_prob else 0.0
    shift = tuple(rng.uniform(-shift_factor, shift_factor, size=2))
    flip = bool(rng.random() < flip_prob)
    return AugParams(float(scale), float(angle), (float(shift[0]), float(shift[1])), flip)


def augmented_crop_matrix(center, scale, output_size, params: AugParams) -> np.ndarray:
    """crop_matrix of the box's centre/scale after applying `params`."""
    scale = np.asarray(scale, dtype=np.float64) * params.scale
    center = np.asarray(center, dtype=np.float64) + np.asarray(params.shift) * scale
    return crop_matrix(center, scale, output_size, params.rotation, params.flip)


def flip_keypoint_order(values: np.ndarray, flip_index) -> np.ndarray:
    """After mirroring, keypoint k of the new sample is old keypoint flip_index[k] (left <-> right)."""
    return np.asarray(values)[list(flip_index)]


def build_photometric():
    """Moderate colour / blur / noise augmentation on uint8 RGB images (albumentations)."""
    import albumentations as A

    return A.Compose([
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=10, p=0.3),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 5))], p=0.2),
        A.GaussNoise(std_range=(0.02, 0.06), p=0.2),
    ])


def normalize_image(image: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> float32 [3, H, W], (x / 255 - mean) / std with ImageNet statistics."""
    image = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(image.transpose(2, 0, 1))
