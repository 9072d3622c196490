"""data.augment_on=device against the loader path: same draws, same crops, same keypoints."""
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from kpdet.data import TopDownDataset
from kpdet.data import device_augment as DA
from kpdet.data import transforms as T
from tests.data.test_dataset import NAMES, _ann, write_fixture


def test_canvas_size_holds_the_rotated_crop():
    assert DA.canvas_size((192, 256), 0) == (192, 256)
    assert DA.canvas_size((192, 256), 90) == (320, 320)  # passes the diagonal, sqrt(192² + 256²) = 320
    # 30 deg: 192 cos + 256 sin = 166.3 + 128 = 294.3 -> 295, made even-offset -> 296;
    # 192 sin + 256 cos = 96 + 221.7 = 317.7 -> 318 (318 - 256 = 62, even).
    assert DA.canvas_size((192, 256), 30) == (296, 318)
    # 40 deg on (48, 64): the height peaks at atan(48 / 64) = 36.9 deg with the diagonal, 80;
    # the width 48 cos 40 + 64 sin 40 = 36.8 + 41.1 = 77.9 -> 78.
    assert DA.canvas_size((48, 64), 40) == (78, 80)
    assert DA.canvas_size((48, 64), 180) == (80, 80)  # every angle: the diagonal both ways
    for size, limit in (((48, 64), 40), ((192, 256), 30), ((160, 160), 45), ((64, 48), 75)):
        wc, hc = DA.canvas_size(size, limit)
        half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.array(size) / 2
        for angle in np.radians(np.linspace(-limit, limit, 181)):
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            corners = half @ rot.T
            assert (np.abs(corners) <= np.array([wc, hc]) / 2 + 1e-9).all(), (size, limit, angle)


def test_residual_is_rotation_and_mirror_without_scale():
    center, scale = np.array([80.0, 60.0]), np.array([48.0, 64.0])
    params = T.AugParams(scale=1.2, rotation=25.0, shift=(0.05, -0.03), flip=True)
    canvas = DA.canvas_size((48, 64), 30)
    to_canvas, residual = DA.canvas_matrices(center, scale, (48, 64), canvas, params)
    full = T.augmented_crop_matrix(center, scale, (48, 64), params)
    point = np.array([[70.0, 55.0]])
    np.testing.assert_allclose(T.transform_points(T.transform_points(point, to_canvas), residual),
                               T.transform_points(point, full), atol=1e-9)
    assert abs(abs(np.linalg.det(residual[:, :2])) - 1.0) < 1e-9  # same resolution: no scaling


def _smooth_fixture(tmp_path, size=(160, 120)):
    """One instance on a smooth RGB image (low-frequency waves): bilinear interpolation is
    nearly exact there, so the two paths' pixels can be compared tightly."""
    import cv2

    ys, xs = np.mgrid[:size[1], :size[0]].astype(np.float64)
    rgb = np.stack([127 + 100 * np.sin(xs / 9.0), 127 + 100 * np.cos(ys / 11.0),
                    127 + 90 * np.sin((xs + ys) / 13.0)], axis=-1)
    kps = [(65.0, 50.0, 2), (85.0, 52.0, 2), (75.0, 70.0, 1)]
    ann_file, img_dir = write_fixture(tmp_path, [_ann(1, 1, kps, [50.0, 30.0, 50.0, 60.0])], size=size)
    cv2.imwrite(str(img_dir / "0001.png"), np.round(rgb).astype(np.uint8)[..., ::-1])
    return ann_file, img_dir


def _both_paths(ann_file, img_dir, seed, **aug):
    """(loader-path sample, device-path batch of one after augment_batch) for torch seed `seed`."""
    kwargs = dict(train=True, photometric=False, **aug)
    loader = TopDownDataset(ann_file, img_dir, (48, 64), augment_on="loader", **kwargs)
    device = TopDownDataset(ann_file, img_dir, (48, 64), augment_on="device", **kwargs)
    torch.manual_seed(seed)
    a = loader[0]
    torch.manual_seed(seed)
    b = DA.augment_batch(default_collate([device[0]]), torch.device("cpu"))
    return a, b


@pytest.mark.parametrize("seed", range(6))
def test_unrotated_samples_match_the_loader_path_pixel_for_pixel(tmp_path, seed):
    ann_file, img_dir = _smooth_fixture(tmp_path)
    a, b = _both_paths(ann_file, img_dir, seed, rotation=30, rotation_prob=0.0, flip_prob=0.5,
                       scale_factor=0.25, shift_factor=0.05)
    torch.testing.assert_close(b["keypoints"][0], a["keypoints"], atol=1e-3, rtol=0)
    torch.testing.assert_close(b["visible"][0], a["visible"])
    torch.testing.assert_close(b["crop_to_image"][0], a["crop_to_image"])
    # A whole-pixel shift (and mirror) of the same cv2 warp: equal up to float rounding of the
    # normalisation (1/255 of a level / std 0.225 ~ 0.02 would be one uint8 level).
    torch.testing.assert_close(b["image"][0], a["image"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("seed", range(6))
def test_rotated_samples_match_within_interpolation_tolerance(tmp_path, seed):
    ann_file, img_dir = _smooth_fixture(tmp_path)
    a, b = _both_paths(ann_file, img_dir, seed, rotation=40, rotation_prob=1.0, flip_prob=0.5,
                       scale_factor=0.25, shift_factor=0.05)
    torch.testing.assert_close(b["keypoints"][0], a["keypoints"], atol=1e-3, rtol=0)
    rgb = lambda s: s * torch.tensor(T.IMAGENET_STD).view(3, 1, 1) * 255  # normalised -> levels
    diff = (rgb(b["image"][0]) - rgb(a["image"])).abs()
    # The crop lies inside the image (no zero border). Twice-bilinear on waves of period >= 2 pi 9
    # px: the extra interpolation errs by at most h''/8 <= 100 / 81 / 8 ~ 0.15 levels per axis;
    # cv2 quantises its bilinear weights to 1/32 px (<= 100 / 9 / 64 ~ 0.2 levels per axis) and
    # rounds to uint8 twice (0.5 level each). Measured: max ~1.3, mean ~0.3 levels.
    assert diff.max() < 2.0 and diff.mean() < 0.5


def test_flipped_keypoints_swap_left_and_right(tmp_path):
    ann_file, img_dir = _smooth_fixture(tmp_path)
    ds = TopDownDataset(ann_file, img_dir, (48, 64), train=True, augment_on="device", flip_prob=1.0,
                        rotation_prob=0.0, scale_factor=0.0, photometric=False)
    torch.manual_seed(0)
    b = DA.augment_batch(default_collate([ds[0]]), torch.device("cpu"))
    x = b["keypoints"][0, :, 0]
    # The annotation's left_eye (x=65) is left of its right_eye (x=85); mirrored, the crop's
    # keypoint 0 ("left_eye") is the annotation's right_eye, now on the left again.
    assert NAMES[:2] == ["left_eye", "right_eye"] and x[0] < x[1]


def _uint8_image(seed=0, size=(24, 20)):
    rng = np.random.default_rng(seed)
    smooth = rng.uniform(30, 220, size=(4, 4, 3))
    import cv2

    return np.clip(cv2.resize(smooth, size, interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def _device(image, **params):
    x = torch.from_numpy(image.transpose(2, 0, 1)).float()[None] / 255
    full = {k: torch.from_numpy(v).float()[None] for k, v in {**DA.identity_photometric(), **params}.items()}
    return (DA.photometric_batch(x, full)[0].numpy().transpose(1, 2, 0) * 255)


def test_brightness_contrast_matches_albumentations():
    import albumentations as A

    image = _uint8_image()
    reference = A.RandomBrightnessContrast(brightness_limit=(0.1, 0.1), contrast_limit=(0.15, 0.15), p=1.0)
    expected = reference(image=image)["image"].astype(np.float64)
    got = _device(image, alpha_beta=np.array([1.15, 0.1]))
    assert np.abs(got - expected).max() <= 1.0  # uint8 rounding


def test_hue_saturation_value_matches_albumentations():
    import albumentations as A

    image = _uint8_image(1)
    reference = A.HueSaturationValue(hue_shift_limit=(8, 8), sat_shift_limit=(15, 15),
                                     val_shift_limit=(-6, -6), p=1.0)
    expected = reference(image=image)["image"].astype(np.float64)
    got = _device(image, hsv=np.array([16.0, 15 / 255, -6 / 255]))  # 8 OpenCV hue units = 16 degrees
    # OpenCV's uint8 HSV rounds hue to 2 degrees and S, V to 1/255: a few levels apart at most.
    assert np.abs(got - expected).mean() < 1.5 and np.abs(got - expected).max() <= 6.0


def test_gaussian_blur_matches_opencv():
    import cv2

    image = _uint8_image(2)
    expected = cv2.GaussianBlur(image.astype(np.float64), (5, 5), 1.2, borderType=cv2.BORDER_REFLECT_101)
    got = _device(image, kernel=DA.gaussian_kernel(5, 1.2))
    assert np.abs(got - expected).max() < 1e-3


def test_photometric_draws_follow_the_loader_probabilities():
    rng = np.random.default_rng(0)
    draws = [DA.sample_photometric(rng) for _ in range(4000)]
    rate = lambda f: np.mean([f(d) for d in draws])
    # build_photometric: brightness/contrast p=0.5, HSV p=0.3, blur p=0.2, noise p=0.2 (binomial
    # std over 4000 draws <= 0.008: 0.03 is ~4 std).
    assert abs(rate(lambda d: d["alpha_beta"][0] != 1.0) - 0.5) < 0.03
    assert abs(rate(lambda d: d["hsv"].any()) - 0.3) < 0.03
    assert abs(rate(lambda d: d["kernel"][2, 2] != 1.0) - 0.2) < 0.03
    assert abs(rate(lambda d: d["noise"][0] > 0) - 0.2) < 0.03
    assert all(abs(d["kernel"].sum() - 1) < 1e-9 for d in draws)
    assert max(abs(d["alpha_beta"][1]) for d in draws) <= 0.2


def test_noise_has_the_drawn_std():
    torch.manual_seed(0)
    x = torch.full((1, 3, 64, 64), 0.5)
    params = {k: torch.from_numpy(v).float()[None] for k, v in DA.identity_photometric().items()}
    params["noise"] = torch.tensor([[0.04]])
    assert abs(float(DA.photometric_batch(x, params).std()) - 0.04) < 0.002


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (benchmarks/gpu_check.sh runs it)")
def test_augment_batch_on_cuda_matches_cpu(tmp_path):
    ann_file, img_dir = _smooth_fixture(tmp_path)
    ds = TopDownDataset(ann_file, img_dir, (48, 64), train=True, augment_on="device", rotation_prob=1.0,
                        photometric=False)
    torch.manual_seed(0)
    batch = default_collate([ds[0] for _ in range(8)])
    cpu = DA.augment_batch(batch, torch.device("cpu"))
    gpu = DA.augment_batch(batch, torch.device("cuda"))
    torch.testing.assert_close(gpu["keypoints"].cpu(), cpu["keypoints"], atol=1e-4, rtol=0)
    torch.testing.assert_close(gpu["image"].cpu(), cpu["image"], atol=1e-3, rtol=0)
