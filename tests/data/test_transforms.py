"""Top-down geometry: hand-computed matrices, and painted dots that must follow their keypoints."""
import numpy as np
import pytest

from kpdet.data import transforms as T


def test_box_to_center_scale_pads_then_widens_to_aspect():
    # box (0, 0, 100, 50), W/H = 192/256 = 0.75, padding 1.25: 125 x 62.5; 125 > 0.75 * 62.5, so the
    # height grows to 125 / 0.75 = 166.67. Centre = (0 + 100/2, 0 + 50/2).
    center, scale = T.box_to_center_scale([0, 0, 100, 50], 0.75, 1.25)
    np.testing.assert_allclose(center, [50, 25])
    np.testing.assert_allclose(scale, [125, 125 / 0.75])
    # A tall box widens instead: 10 x 100 -> w = 100 * 0.75 = 75.
    _, scale = T.box_to_center_scale([5, 5, 10, 100], 0.75, 1.0)
    np.testing.assert_allclose(scale, [75, 100])


def test_crop_matrix_maps_box_edges_to_input_edges():
    # Box region [c - s/2, c + s/2] -> [-0.5, W - 0.5]: c = (30, 60), s = (40, 80), input 32 x 64, k = 0.8.
    m = T.crop_matrix([30, 60], [40, 80], (32, 64))
    pts = T.transform_points(np.array([[10, 20], [50, 100], [30, 60]]), m)
    # (10 - 30) * 0.8 + 15.5 = -0.5 ; (50 - 30) * 0.8 + 15.5 = 31.5 ; the centre goes to ((32-1)/2, (64-1)/2)
    np.testing.assert_allclose(pts, [[-0.5, -0.5], [31.5, 63.5], [15.5, 31.5]], atol=1e-12)


def test_rotation_and_flip_by_hand():
    # k = 1 (s = W), 90 degrees: a point 10 px right of the centre goes 10 px up (counter-clockwise).
    m = T.crop_matrix([50, 50], [21, 21], (21, 21), rotation=90)
    np.testing.assert_allclose(T.transform_points([[60, 50]], m), [[10, 0]], atol=1e-12)
    # Flip: x' = W - 1 - x; the centre column (x = 10) stays, x = 3 -> 17.
    m = T.crop_matrix([50, 50], [21, 21], (21, 21), flip=True)
    np.testing.assert_allclose(T.transform_points([[50, 50], [43, 55]], m), [[10, 10], [17, 15]], atol=1e-12)


def test_invert_affine_round_trips():
    m = T.crop_matrix([40, 30], [50, 70], (48, 64), rotation=-23, flip=True)
    pts = np.random.default_rng(0).uniform(0, 100, (7, 2))
    back = T.transform_points(T.transform_points(pts, m), T.invert_affine(m))
    np.testing.assert_allclose(back, pts, atol=1e-9)


def test_unscaled_crop_is_an_exact_pixel_copy():
    # Pixel centres at integers: centre x0 + (W-1)/2 with k = 1 is a pure integer translation by -x0,
    # so bilinear sampling reproduces image[y0:y0+H, x0:x0+W] exactly.
    image = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    x0, y0, W, H = 7, 5, 16, 20
    m = T.crop_matrix([x0 + (W - 1) / 2, y0 + (H - 1) / 2], [W, H], (W, H))
    np.testing.assert_array_equal(T.warp_image(image, m, (W, H)), image[y0:y0 + H, x0:x0 + W])


def _dot_image(shape, xy, sigma=2.0):
    """[H, W] uint8 with a Gaussian dot (peak 255) centred at the sub-pixel position xy."""
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    d2 = (xs - xy[0]) ** 2 + (ys - xy[1]) ** 2
    return np.round(255 * np.exp(-d2 / (2 * sigma**2))).astype(np.uint8)


def _brightest(image):
    y, x = np.unravel_index(np.argmax(image), image.shape)
    return np.array([x, y], dtype=np.float64)


def _centroid(image):
    """Sub-pixel dot centre: mean of pixel coordinates weighted by intensity^2 (tail suppressed)."""
    w = image.astype(np.float64) ** 2
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    return np.array([(xs * w).sum(), (ys * w).sum()]) / w.sum()


@pytest.mark.parametrize("seed", range(25))
def test_painted_dots_follow_keypoints_through_random_augmentation(seed):
    rng = np.random.default_rng(seed)
    shape, size = (120, 160), (48, 64)  # image H x W ; input W x H
    box = [50 + rng.uniform(-10, 10), 30 + rng.uniform(-10, 10), 50, 60]
    # Keypoints at sub-pixel positions inside the box's middle, so they stay in every augmented crop.
    kps = np.stack([rng.uniform(box[0] + 12, box[0] + 38, 4), rng.uniform(box[1] + 15, box[1] + 45, 4)], 1)
    params = T.sample_aug_params(rng, flip_prob=0.5, scale_factor=0.25, rotation=40, rotation_prob=0.8,
                                 shift_factor=0.05)
    center, scale = T.box_to_center_scale(box, size[0] / size[1], 1.25)
    m = T.augmented_crop_matrix(center, scale, size, params)
    moved = T.transform_points(kps, m)
    for kp, target in zip(kps, moved):
        crop = T.warp_image(_dot_image(shape, kp), m, size)
        # The crop is ~0.6-1.1x the image scale; argmax lands within half a pixel plus sampling error.
        assert np.linalg.norm(_brightest(crop) - target) <= 1.0, (params, kp, target)
        # The dot's centroid is far more precise (measured <= 0.03 px over 200 seeds): a half-pixel
        # convention slip (x' = W - x instead of W - 1 - x, say) would fail here.
        assert np.linalg.norm(_centroid(crop) - target) <= 0.1, (params, kp, target)


def test_flip_keypoint_order_swaps_by_index():
    flipped = T.flip_keypoint_order(np.array([[1, 1], [2, 2], [3, 3]]), (0, 2, 1))
    np.testing.assert_array_equal(flipped, [[1, 1], [3, 3], [2, 2]])


def test_sample_aug_params_ranges_and_probabilities():
    rng = np.random.default_rng(0)
    draws = [T.sample_aug_params(rng, flip_prob=0.5, scale_factor=0.25, rotation=30, rotation_prob=0.6,
                                 shift_factor=0.1) for _ in range(2000)]
    scales = np.array([d.scale for d in draws])
    angles = np.array([d.rotation for d in draws])
    assert scales.min() >= 0.75 and scales.max() <= 1.25
    assert np.abs(angles).max() <= 30 and abs((angles != 0).mean() - 0.6) < 0.05
    assert abs(np.mean([d.flip for d in draws]) - 0.5) < 0.05
    assert np.abs(np.array([d.shift for d in draws])).max() <= 0.1


def test_normalize_image_uses_imagenet_statistics():
    image = np.full((2, 3, 3), 255, dtype=np.uint8)
    out = T.normalize_image(image)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    # (1 - 0.485) / 0.229 = 2.2489
    np.testing.assert_allclose(out[0, 0, 0], (1 - 0.485) / 0.229, rtol=1e-6)


def test_photometric_keeps_shape_and_dtype():
    image = np.random.default_rng(0).integers(0, 256, (32, 24, 3), dtype=np.uint8)
    aug = T.build_photometric()
    aug.set_random_seed(3)
    out = aug(image=image)["image"]
    assert out.shape == image.shape and out.dtype == np.uint8
