"""Flip testing: heatmaps of the mirrored crop, mapped back, match the original crop's."""
import pytest
import torch

from kpdet.codecs import build_codec, flip_heatmaps
from kpdet.codecs.flip import shift_heatmaps_x

FLIP = [1, 0, 3, 2, 4]  # two left/right pairs and a centre keypoint
SIZES = {"input_size": (192, 256), "heatmap_size": (48, 64)}


def mirrored(kp: torch.Tensor, width: int) -> torch.Tensor:
    """Keypoints of the mirrored crop: x -> (W_in - 1) - x, left/right channels swapped."""
    out = kp.clone()
    out[..., 0] = (width - 1) - out[..., 0]
    return out[:, FLIP]


def test_shift_by_hand():
    x = torch.tensor([[[[0.0, 4.0, 8.0, 0.0]]]])
    assert shift_heatmaps_x(x, 1.0).tolist() == [[[[0.0, 0.0, 4.0, 8.0]]]]
    assert shift_heatmaps_x(x, -1.0).tolist() == [[[[4.0, 8.0, 0.0, 0.0]]]]
    # out[j] = 0.75 in[j] + 0.25 in[j - 1]: [0, 3, 7, 2]
    assert shift_heatmaps_x(x, 0.25).tolist() == [[[[0.0, 3.0, 7.0, 2.0]]]]


def test_flip_shift_by_hand():
    # msra, stride 4: mirrored heatmap sits at u - (1 - 1/4); shift back by +0.75
    assert build_codec("msra", **SIZES).flip_shift == pytest.approx(0.75)
    # udp: W - 1 - (47 / 191) * 191 = 0
    assert build_codec("udp", **SIZES).flip_shift == pytest.approx(0.0, abs=1e-9)


def test_channels_are_swapped_and_width_mirrored():
    h = torch.arange(2 * 5 * 2 * 3, dtype=torch.float32).view(2, 5, 2, 3)
    out = flip_heatmaps(h, FLIP)
    assert torch.equal(out[:, 0], h[:, 1].flip(-1)) and torch.equal(out[:, 4], h[:, 4].flip(-1))


def test_udp_flip_is_exact():
    codec = build_codec("udp", **SIZES)
    kp = torch.rand(6, 5, 2) * torch.tensor([191.0, 255.0])
    hm, _ = codec.encode(kp, torch.ones(6, 5))
    back = codec.flip_heatmaps(codec.encode(mirrored(kp, 192), torch.ones(6, 5))[0], FLIP)
    assert (back - hm).abs().max() < 1e-5


@pytest.mark.parametrize("name,tol", [("dark", 0.05), ("msra", 2.9)])
def test_flip_back_decodes_to_the_keypoints(name, tol):
    """dark: the 0.75 px shift is a linear interpolation, measured 0.023 input px mean error;
    msra: peaks are whole pixels, so the bound is its rounding error (0.5 * sqrt(2) * 4 = 2.83)."""
    codec = build_codec(name, **SIZES)
    kp = torch.rand(20, 5, 2) * torch.tensor([150.0, 200.0]) + 20
    back = codec.flip_heatmaps(codec.encode(mirrored(kp, 192), torch.ones(20, 5))[0], FLIP)
    err = (codec.decode(back)[0] - kp).norm(dim=-1)
    assert err.max() < tol
