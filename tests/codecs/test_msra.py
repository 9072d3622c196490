"""msra / dark / udp: hand-computed targets, exact round trips, build errors."""
import math

import pytest
import torch

from kpdet.codecs import build_codec, list_codecs

SIZES = {"input_size": (32, 24), "heatmap_size": (8, 6)}  # stride 4


def test_list_and_build_by_name_or_dict():
    assert {"msra", "dark", "udp"} <= set(list_codecs())
    assert build_codec("msra", **SIZES).heatmap_size == (8, 6)
    codec = build_codec({"type": "msra", "sigma": 1.5, "unbiased": True}, **SIZES)
    assert codec.unbiased and float(codec.sigma) == 1.5 and codec.refine == "dark"
    # spec wins over extra
    assert build_codec({"type": "udp", "heatmap_size": (16, 12)}, **SIZES).heatmap_size == (16, 12)
    # whole-number floats (W / 4 from the engine) are accepted
    assert build_codec("udp", input_size=(32, 24), heatmap_size=(32 / 4, 24 / 4)).heatmap_size == (8, 6)


def test_unknown_param_and_codec_are_named():
    with pytest.raises(TypeError, match="'sgima'"):
        build_codec({"type": "msra", "sgima": 2}, **SIZES)
    with pytest.raises(KeyError, match="known: .*msra"):
        build_codec("nope", **SIZES)
    with pytest.raises(ValueError, match="refine"):
        build_codec({"type": "msra", "refine": "magic"}, **SIZES)


def test_msra_target_values_by_hand():
    codec = build_codec({"type": "msra", "sigma": 1.0}, **SIZES)
    # (9, 12) input px -> (2.25, 3) heatmap px -> nearest pixel (2, 3)
    hm, w = codec.encode(torch.tensor([[[9.0, 12.0]]]), torch.tensor([[True]]))
    assert hm.shape == (1, 1, 6, 8) and hm.dtype == torch.float32 and w.tolist() == [[1.0]]
    h = hm[0, 0]
    assert h[3, 2] == 1.0                                           # exp(0)
    assert h[3, 3].item() == pytest.approx(math.exp(-0.5), rel=1e-6)   # d = 1: exp(-1 / 2)
    assert h[4, 3].item() == pytest.approx(math.exp(-1.0), rel=1e-6)   # d^2 = 2: exp(-2 / 2)
    assert h[3, 5].item() == pytest.approx(math.exp(-4.5), rel=1e-6)   # d = 3 = 3 sigma: kept
    assert h[0, 2].item() == pytest.approx(math.exp(-4.5), rel=1e-6)   # dy = 3: kept
    assert h[3, 6] == 0 and h[0, 6] == 0                            # dx = 4 > 3 sigma: cut (0 is exact)
    assert (h == 1.0).sum() == 1


def test_invisible_and_off_map_keypoints_give_zero_channels():
    codec = build_codec({"type": "udp", "sigma": 1.0}, **SIZES)
    kp = torch.tensor([[[10.0, 10.0], [10.0, 10.0], [-20.0, 10.0], [float("nan"), 1.0], [-10.0, 10.0]]])
    vis = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]])
    hm, w = codec.encode(kp, vis)
    # udp: u = x * 7 / 31; x = -20 -> u = -4.5, support [-7.5, -1.5] misses the map;
    # x = -10 -> u = -2.26: pixel 0 (distance 2.26 <= 3) is in the support, pixel 1 (3.26) is not.
    assert w.tolist() == [[1.0, 0.0, 0.0, 0.0, 1.0]]
    assert hm[0, 1:4].abs().sum() == 0
    assert hm[0, 4, :, 0].max() > 0 and hm[0, 4, :, 1:].max() == 0


@pytest.mark.parametrize("name", ["msra", "dark", "udp"])
def test_exact_round_trip_at_whole_heatmap_pixels(name):
    codec = build_codec({"type": name, "sigma": 2.0}, input_size=(192, 256), heatmap_size=(48, 64))
    u = torch.tensor([[[0.0, 0.0], [5.0, 7.0], [47.0, 63.0], [20.0, 1.0], [46.0, 30.0]]])
    kp = codec.to_input(u)
    out, conf = codec.decode(codec.encode(kp, torch.ones(1, 5, dtype=torch.bool))[0])
    assert torch.allclose(out, kp, atol=1e-3)
    assert torch.allclose(conf, torch.ones(1, 5))


def test_quarter_shift_by_hand():
    codec = build_codec({"type": "msra"}, **SIZES)
    hm = torch.zeros(1, 1, 6, 8)
    hm[0, 0, 3, 3], hm[0, 0, 3, 4], hm[0, 0, 3, 2] = 1.0, 0.5, 0.2  # right neighbour larger
    hm[0, 0, 2, 3], hm[0, 0, 4, 3] = 0.3, 0.3                        # tie in y: no shift
    out, conf = codec.decode(hm)
    assert out.tolist() == [[[(3 + 0.25) * 4, 3 * 4]]] and conf.item() == 1.0  # (13, 12)


def test_dark_recovers_sub_pixel_centre():
    codec = build_codec({"type": "dark", "sigma": 2.0}, input_size=(192, 256), heatmap_size=(48, 64))
    kp = torch.tensor([[[50.3, 100.7], [3.9, 250.1], [190.2, 7.7]]])  # interior, near borders
    out, _ = codec.decode(codec.encode(kp, torch.ones(1, 3))[0])
    assert (out - kp).abs().max() < 2e-3
