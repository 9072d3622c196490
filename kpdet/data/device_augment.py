"""Augmentation on the training device (`data.augment_on: device`): the loader cuts a canvas, the
device does the rest for the whole batch.

Loader side (numpy, per sample, in TopDownDataset): the same parameter draws as the loader
path (`transforms.sample_aug_params`, then the photometric draws below from the same
per-sample generator), and a *canvas*: the augmented crop before rotation and flip, at the
crop's resolution, widened to hold the crop under any rotation up to `aug.rotation`:

    canvas (Wc, Hc) = the bounding box of the crop under any rotation in [-r, r] (canvas_size)
    C = image -> canvas (scale and shift of the draw, no rotation, no flip)      [2, 3]
    M = image -> crop   (transforms.augmented_crop_matrix, as the loader path)  [2, 3]
    R = M C^-1 = canvas -> crop: a rotation about the centre, maybe a mirror, no scaling

The sample carries the uint8 canvas, keypoints in canvas px (already in flipped order),
R and the photometric parameters. Device side (`augment_batch`, torch, batched): one
`grid_sample` through R (bilinear, zeros outside, as cv2.warpAffine), keypoints
R @ [x, y, 1], photometric jitter, ImageNet normalisation.

Against the loader path: keypoints agree to float32 rounding; a sample without rotation
is a whole-pixel shift (and mirror) of the canvas, so its pixels equal the loader's crop
(same cv2 warp); a rotated sample is interpolated twice (canvas, then rotation), which
blurs it slightly (tests/data/test_device_augment.py bounds the difference).
Photometric draws follow `transforms.build_photometric`'s ranges and probabilities
(brightness/contrast, hue/saturation/value, Gaussian or motion blur, Gaussian noise),
applied in float instead of uint8 steps.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from kpdet.data import transforms as T

KERNEL = 5  # blur kernels are padded to 5 x 5 (albumentations' blur_limit (3, 5))


def canvas_size(input_size, max_rotation: float) -> tuple[int, int]:
    """(Wc, Hc) of a canvas holding a (W, H) crop rotated by any angle up to `max_rotation` degrees.

    The rotated crop's bounding box is W |cos t| + H |sin t| wide and W |sin t| + H |cos t| high;
    over t in [0, r] each is largest at t = r or where it peaks (t = atan(H / W), resp.
    atan(W / H): the diagonal). Rounded up so that Wc - W and Hc - H are even."""
    W, H = int(input_size[0]), int(input_size[1])
    limit = math.radians(min(abs(float(max_rotation)), 90.0))
    angles = [0.0, limit] + [a for a in (math.atan2(H, W), math.atan2(W, H)) if a <= limit]
    wc = max(W * abs(math.cos(t)) + H * abs(math.sin(t)) for t in angles)
    hc = max(W * abs(math.sin(t)) + H * abs(math.cos(t)) for t in angles)
    wc, hc = math.ceil(wc - 1e-9), math.ceil(hc - 1e-9)
    return wc + (wc - W) % 2, hc + (hc - H) % 2


def canvas_matrices(center, scale, input_size, canvas, params: T.AugParams) -> tuple[np.ndarray, np.ndarray]:
    """(C image -> canvas, R canvas -> crop), both [2, 3] float64, for one draw `params`."""
    W, H = input_size
    full = T.augmented_crop_matrix(center, scale, input_size, params)
    size = np.asarray(scale, dtype=np.float64) * params.scale
    shifted = np.asarray(center, dtype=np.float64) + np.asarray(params.shift) * size
    to_canvas = T.crop_matrix(shifted, size * (canvas[0] / W, canvas[1] / H), canvas)
    residual = (np.vstack([full, [0, 0, 1]]) @ np.vstack([T.invert_affine(to_canvas), [0, 0, 1]]))[:2]
    return to_canvas, residual


def sample_photometric(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One draw of the photometric jitter, with the ranges and probabilities of
    transforms.build_photometric (values for images in [0, 1]):
    alpha_beta [2]: x -> alpha x + beta (contrast 1 + U(-0.2, 0.2), brightness U(-0.2, 0.2); p 0.5);
    hsv [3]: hue shift in degrees (2 x U(-10, 10): OpenCV's hue unit is 2 degrees), saturation
    and value shifts (U(-20, 20) / 255, U(-10, 10) / 255); p 0.3;
    kernel [5, 5]: Gaussian (size 3 or 5, sigma U(0.5, 3)) or motion blur (a line of 3 or 5 px),
    one of them with p 0.2, else the identity;
    noise [1]: std of additive Gaussian noise, U(0.02, 0.06) with p 0.2, else 0.
    """
    alpha_beta = np.array([1.0, 0.0])
    if rng.random() < 0.5:
        alpha_beta = np.array([1.0 + rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)])
    hsv = np.zeros(3)
    if rng.random() < 0.3:
        hsv = np.array([2.0 * rng.uniform(-10, 10), rng.uniform(-20, 20) / 255, rng.uniform(-10, 10) / 255])
    kernel = np.zeros((KERNEL, KERNEL))
    kernel[KERNEL // 2, KERNEL // 2] = 1.0
    if rng.random() < 0.2:
        size = int(rng.choice([3, 5]))
        kernel = gaussian_kernel(size, rng.uniform(0.5, 3.0)) if rng.random() < 0.5 else \
            motion_kernel(size, rng.uniform(0.0, 180.0))
    noise = np.array([rng.uniform(0.02, 0.06) if rng.random() < 0.2 else 0.0])
    return {"alpha_beta": alpha_beta, "hsv": hsv, "kernel": kernel, "noise": noise}


def identity_photometric() -> dict[str, np.ndarray]:
    """Parameters that leave an image as it is (photometric off)."""
    kernel = np.zeros((KERNEL, KERNEL))
    kernel[KERNEL // 2, KERNEL // 2] = 1.0
    return {"alpha_beta": np.array([1.0, 0.0]), "hsv": np.zeros(3), "kernel": kernel, "noise": np.zeros(1)}


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Normalised size x size Gaussian, centred in a 5 x 5 array."""
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r ** 2) / (2 * sigma ** 2))
    out = np.zeros((KERNEL, KERNEL))
    pad = (KERNEL - size) // 2
    out[pad:pad + size, pad:pad + size] = np.outer(g, g) / g.sum() ** 2
    return out


def motion_kernel(size: int, angle: float) -> np.ndarray:
    """A line of `size` px through the centre at `angle` degrees (box average along it), 5 x 5."""
    out = np.zeros((KERNEL, KERNEL))
    c, half = KERNEL // 2, (size - 1) / 2
    for t in np.linspace(-half, half, 4 * size):
        x = c + t * math.cos(math.radians(angle))
        y = c + t * math.sin(math.radians(angle))
        out[int(round(y)), int(round(x))] = 1.0
    return out / out.sum()


def canvas_sample(image: np.ndarray, keypoints: np.ndarray, center, scale, input_size, canvas,
                  params: T.AugParams, photometric: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The device path's sample fields: image (uint8 canvas [3, Hc, Wc]), keypoints [K, 2] canvas
    px (image order: the caller reorders flipped samples), canvas_to_crop [2, 3], crop_size [2]
    (W, H) and the photometric parameters under photo_* keys."""
    to_canvas, residual = canvas_matrices(center, scale, input_size, canvas, params)
    pixels = T.warp_image(image, to_canvas, canvas)
    sample = {
        "image": torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))),
        "keypoints": torch.from_numpy(T.transform_points(keypoints, to_canvas).astype(np.float32)),
        "canvas_to_crop": torch.from_numpy(residual.astype(np.float32)),
        "crop_size": torch.tensor([int(input_size[0]), int(input_size[1])]),
    }
    sample.update({f"photo_{k}": torch.from_numpy(v.astype(np.float32)) for k, v in photometric.items()})
    return sample


def augment_batch(batch: dict, device: torch.device) -> dict:
    """A batch of canvases -> the batch the training step expects, on `device`:
    image [B, 3, H, W] normalised float32, keypoints [B, K, 2] crop px, visible [B, K]."""
    residual = batch["canvas_to_crop"].to(device, non_blocking=True)
    canvas = batch["image"].to(device, non_blocking=True).float().div_(255.0)
    W, H = (int(v) for v in batch["crop_size"][0])
    crops = warp_batch(canvas, residual, (W, H))
    crops = photometric_batch(crops, {k[6:]: v.to(device, non_blocking=True)
                                      for k, v in batch.items() if k.startswith("photo_")})
    mean = torch.as_tensor(T.IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.as_tensor(T.IMAGENET_STD, device=device).view(1, 3, 1, 1)
    keypoints = batch["keypoints"].to(device, non_blocking=True)
    keypoints = keypoints @ residual[:, :, :2].transpose(1, 2) + residual[:, None, :, 2]
    return {**batch, "image": (crops - mean) / std, "keypoints": keypoints,
            "visible": batch["visible"].to(device, non_blocking=True)}


def warp_batch(images: torch.Tensor, matrices: torch.Tensor, output_size) -> torch.Tensor:
    """images [B, C, h, w] -> [B, C, H, W]: output pixel p samples input A^-1 p (A = matrices
    [B, 2, 3], input px -> output px, pixel centres at integers), bilinear, zeros outside.

    affine_grid works in normalised coordinates u = (2 x + 1) / size - 1 (align_corners=False),
    so theta = N_in A^-1 N_out^-1 with N_s = [[2/s, 0, 1/s - 1], ...]."""
    B, C, h, w = images.shape
    W, H = output_size
    inverse = torch.linalg.inv(_homogeneous(matrices.double()))
    theta = _normaliser(w, h, images.device) @ inverse @ torch.linalg.inv(_normaliser(W, H, images.device))
    grid = F.affine_grid(theta[:, :2].to(images.dtype), [B, C, H, W], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _homogeneous(matrices: torch.Tensor) -> torch.Tensor:
    row = torch.tensor([0.0, 0.0, 1.0], dtype=matrices.dtype, device=matrices.device)
    return torch.cat([matrices, row.expand(len(matrices), 1, 3)], dim=1)


def _normaliser(width: int, height: int, device) -> torch.Tensor:
    """px -> align_corners=False normalised coordinates, [3, 3] float64."""
    return torch.tensor([[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0],
                         [0.0, 0.0, 1.0]], dtype=torch.float64, device=device)


def photometric_batch(images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """images [B, 3, H, W] in [0, 1] -> jittered, same order as build_photometric's Compose:
    alpha x + beta; hue/saturation/value shift; 5 x 5 blur per sample; Gaussian noise; each
    step clipped to [0, 1] as the uint8 pipeline saturates."""
    B = len(images)
    ab = params["alpha_beta"]
    images = (images * ab[:, :1, None, None] + ab[:, 1:, None, None]).clamp_(0, 1)
    jittered = (params["hsv"] != 0).any(1).nonzero().flatten()  # ~30 % of the samples
    if len(jittered):
        images = images.index_copy(0, jittered, shift_hsv(images[jittered], params["hsv"][jittered]))
    kernels = params["kernel"].to(images.dtype)[:, None].repeat_interleave(3, dim=0)  # [B*3, 1, 5, 5]
    flat = images.reshape(1, B * 3, *images.shape[2:])
    images = F.conv2d(F.pad(flat, [KERNEL // 2] * 4, mode="reflect"), kernels, groups=B * 3)
    images = images.reshape(B, 3, *images.shape[2:])
    noise = params["noise"].view(B, 1, 1, 1)
    if bool((noise > 0).any()):
        images = images + torch.randn_like(images) * noise
    return images.clamp_(0, 1)


def shift_hsv(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """RGB [B, 3, H, W] in [0, 1] -> hue + shifts[:, 0] degrees (mod 360), saturation and value +
    shifts[:, 1:] (clipped to [0, 1]); grey pixels (saturation 0) stay grey, as in albumentations."""
    r, g, b = images.unbind(1)
    value, argmax = images.max(1)
    delta = value - images.min(1).values
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(argmax == 0, ((g - b) / safe) % 6,
                      torch.where(argmax == 1, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    sat = torch.where(value > 0, delta / torch.where(value > 0, value, torch.ones_like(value)),
                      torch.zeros_like(value))
    grey = sat == 0
    hue = (hue + shifts[:, 0, None, None]) % 360
    sat = torch.where(grey, sat, (sat + shifts[:, 1, None, None]).clamp(0, 1))
    value = (value + shifts[:, 2, None, None]).clamp(0, 1)
    k = (torch.tensor([5.0, 3.0, 1.0], device=images.device).view(1, 3, 1, 1) + hue[:, None] / 60) % 6
    weight = torch.minimum(torch.minimum(k, 4 - k), torch.ones_like(k)).clamp(min=0)
    return value[:, None] - value[:, None] * sat[:, None] * weight
