"""ordinal_xy codec: the bin convention by hand, round trips on random points, weights, flip, confidence."""
import math

import pytest
import torch

from kpdet.codecs import build_codec


def codec(**params):
    return build_codec({"type": "ordinal_xy", **params}, input_size=(8, 6))


def test_bin_convention_by_hand():
    c = codec(split=2, sigma=0, target="index")
    assert c.num_bins == (16, 12)
    # u = (x + 0.5) * 2 - 0.5: pixel centre x = 0 -> u = 0.5 (between bins 0 and 1, which cover
    # [-0.5, 0) and [0, 0.5)); x = 0.3 -> u = 1.1 -> bin 1; x = 7.4 -> u = 15.3 -> bin 15 (the last);
    # y = 2.0 -> u = 4.5 -> floor(5.0) = bin 5; y = -0.5 (the image edge) -> u = -0.5 -> bin 0.
    (ix, iy), w = c.encode(torch.tensor([[[0.3, 2.0], [7.4, -0.5]]]), torch.ones(1, 2))
    assert ix.tolist() == [[1, 15]] and iy.tolist() == [[5, 0]] and w.tolist() == [[1.0, 1.0]]
    # bin centres decode back exactly: bin j -> x = (j + 0.5) / 2 - 0.5
    px = torch.nn.functional.one_hot(torch.tensor([[1, 15]]), 16).float()
    py = torch.nn.functional.one_hot(torch.tensor([[5, 0]]), 12).float()
    keypoints, confidences = c.decode((px, py))
    assert keypoints.tolist() == [[[0.25, 2.25], [7.25, -0.25]]]
    assert confidences.tolist() == [[1.0, 1.0]]


def test_split_one_bins_are_pixels():
    c = codec(split=1, sigma=0, target="index")
    (ix, iy), _ = c.encode(torch.tensor([[[3.0, 5.0]]]), torch.ones(1, 1))
    assert (ix.item(), iy.item()) == (3, 5)


def test_gaussian_labels_by_hand():
    c = codec(split=1, sigma=1.0)
    (tx, _), _ = c.encode(torch.tensor([[[3.0, 2.0]]]), torch.ones(1, 1))
    # exp(-d^2 / 2) at d = 0, 1, 2, ...: normalised over the 8 bins (d = -3 .. 4)
    raw = [math.exp(-((j - 3) ** 2) / 2) for j in range(8)]
    torch.testing.assert_close(tx[0, 0], torch.tensor(raw) / sum(raw))


@pytest.mark.parametrize("decode, tol", [("local_expectation", 3e-4), ("expectation", 1e-4)])
def test_round_trip_is_sub_bin_on_random_points(decode, tol):
    """Gaussian labels decoded by expectation: exact (float32) away from the border, where the
    label is not cut (local_expectation: its +-4 sigma window around the argmax bin leaves 1e-4 px);
    argmax would be off by up to half a bin (0.25 px at split 2)."""
    g = torch.Generator().manual_seed(0)
    c = build_codec({"type": "ordinal_xy", "split": 2, "sigma": 2.0, "decode": decode}, input_size=(64, 48))
    margin = 4 * 2.0 / 2  # 4 sigma, in px
    points = torch.rand(16, 5, 2, generator=g) * (torch.tensor([64.0, 48.0]) - 1 - 2 * margin) + margin
    labels, weights = c.encode(points, torch.ones(16, 5))
    decoded, _ = c.decode(labels)
    assert (decoded - points).abs().max().item() < tol
    argmax = build_codec({"type": "ordinal_xy", "decode": "argmax"}, input_size=(64, 48)).decode(labels)[0]
    assert 0.1 < (argmax - points).abs().max().item() <= 0.25 + 1e-5


def test_border_keypoints_stay_within_half_a_bin():
    # At the crop's edge the Gaussian (sigma 2 bins) is cut on one side: a plain expectation is
    # pulled inwards by 1.5 bins (0.74 px at x = -0.4); the local window, kept symmetric about the
    # peak, errs by at most half a bin (0.25 px).
    points = torch.tensor([[[0.0, 47.0], [-0.4, 20.0], [0.2, 0.3], [63.4, 47.4]]])
    errors = {}
    for decode in ("local_expectation", "expectation"):
        c = build_codec({"type": "ordinal_xy", "sigma": 2.0, "decode": decode}, input_size=(64, 48))
        decoded, _ = c.decode(c.encode(points, torch.ones(1, 4))[0])
        errors[decode] = (decoded - points).abs().max().item()
    assert errors["local_expectation"] <= 0.25 + 1e-5
    assert errors["expectation"] > 0.7


def test_invisible_and_outside_keypoints_get_weight_zero():
    c = codec(split=2, sigma=1.0)
    points = torch.tensor([[[1.0, 1.0], [float("nan"), 2.0], [8.6, 1.0], [2.0, -0.6], [7.5, 5.5]]])
    (tx, ty), w = c.encode(points, torch.tensor([[1, 0, 2, 2, 2]]))
    # x = 8.6 and y = -0.6 are beyond the crop's edges (-0.5, W - 0.5 = 7.5); (7.5, 5.5) is on them
    assert w.tolist() == [[1.0, 0.0, 0.0, 0.0, 1.0]]
    assert tx[0, 1:4].abs().sum().item() == 0 and ty[0, 1:4].abs().sum().item() == 0
    assert torch.isfinite(tx).all() and tx[0, 0].sum().item() == pytest.approx(1.0)


def test_flip_is_an_exact_reversal():
    """Labels of the mirrored keypoints (x -> W - 1 - x, left/right swapped), mapped back by
    flip_outputs, equal the labels of the original keypoints."""
    c = build_codec({"type": "ordinal_xy", "split": 2, "sigma": 1.5}, input_size=(32, 32))
    points = torch.tensor([[[3.3, 5.0], [20.7, 9.1], [15.5, 30.2]]])
    flip_index = [1, 0, 2]
    mirrored = points[:, flip_index].clone()
    mirrored[..., 0] = 32 - 1 - mirrored[..., 0]
    labels, _ = c.encode(points, torch.ones(1, 3))
    mirrored_labels, _ = c.encode(mirrored, torch.ones(1, 3))
    back = c.flip_outputs(mirrored_labels, flip_index)
    torch.testing.assert_close(back[0], labels[0])
    torch.testing.assert_close(back[1], labels[1])


def test_confidence_is_the_mass_near_the_peak():
    c = codec(split=1, sigma=0, window=1)
    # x: mass 0.5 at bin 2, 0.2 at bins 1 and 3, 0.1 at bin 7 -> within +-1 of the peak: 0.9
    px = torch.tensor([[[0.0, 0.2, 0.5, 0.2, 0.0, 0.0, 0.0, 0.1]]])
    # y: uniform over 6 bins, peak at bin 0 (first argmax) -> bins 0, 1: 2/6
    py = torch.full((1, 1, 6), 1 / 6)
    keypoints, confidences = c.decode((px, py))
    assert confidences.item() == pytest.approx(1 / 3)  # min(0.9, 1/3)
    # local expectation on x: (0.2 * 1 + 0.5 * 2 + 0.2 * 3) / 0.9 = 2.0 (split 1: bin = px);
    # y: the peak is bin 0, on the border, so the symmetric window shrinks to that bin: 0.0
    assert keypoints.tolist() == [[[pytest.approx(2.0), 0.0]]]


def test_near_mass_and_joint_map_by_hand():
    c = codec(split=1, sigma=0, window=1)
    px = torch.tensor([[[0.0, 0.2, 0.5, 0.2, 0.0, 0.0, 0.0, 0.1]]])
    # mass within +-1 bin of each bin: 0+.2, 0+.2+.5, .2+.5+.2, .5+.2+0, .2, 0, .1, .1 (no mass past the ends)
    expected = torch.tensor([[[0.2, 0.7, 0.9, 0.7, 0.2, 0.0, 0.1, 0.1]]])
    torch.testing.assert_close(c.near_mass(px), expected)
    py = torch.full((1, 1, 6), 1 / 6)  # flat: 2/6 at the ends, 3/6 inside
    joint = c.joint_map((px, py))
    assert joint.shape == (1, 1, 6, 8)
    assert joint[0, 0, 2, 2].item() == pytest.approx(0.9 * 0.5)  # y inside, x at the peak
    assert joint[0, 0, 0, 2].item() == pytest.approx(2 / 6 * 0.9)  # y at the edge


def test_joint_map_is_bright_for_a_sharp_target_and_dark_when_flat():
    c = build_codec({"type": "ordinal_xy", "sigma": 2.0}, input_size=(32, 32))  # window 8 bins = 4 sigma
    labels, _ = c.encode(torch.tensor([[[10.25, 12.25]]]), torch.ones(1, 1))
    assert c.joint_map(labels).max().item() > 0.999
    flat = (torch.full((1, 1, 64), 1 / 64), torch.full((1, 1, 64), 1 / 64))
    assert c.joint_map(flat).max().item() == pytest.approx((17 / 64) ** 2)


def test_bad_parameters_name_the_field():
    with pytest.raises(ValueError, match="codec.target='soft'"):
        codec(target="soft")
    with pytest.raises(ValueError, match="codec.decode='mean'"):
        codec(decode="mean")
    with pytest.raises(ValueError, match="codec.split=0.3"):
        codec(split=0.3)
