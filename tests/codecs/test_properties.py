"""Round trips over random points, sizes and sigmas (hypothesis), every registered heatmap codec."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kpdet.codecs import CODECS, build_codec, list_codecs

# heatmap codecs (the ordinal_xy codec has its own round-trip tests in test_ordinal_xy.py)
HEATMAP_CODECS = [n for n in list_codecs() if getattr(CODECS.get(n), "target_kind", "heatmap") == "heatmap"]

# Decoder error bound in heatmap px per axis: sub-pixel codecs recover the centre (measured
# ~1e-4); msra rounds to the nearest pixel, and the quarter shift is 0 on a symmetric target.
BOUND = {"msra": 0.5 + 1e-4, "dark": 2e-3, "udp": 2e-3}


@pytest.mark.parametrize("name", HEATMAP_CODECS)
@settings(max_examples=15, deadline=None)
@given(w=st.integers(8, 64), h=st.integers(8, 64), stride=st.sampled_from([1, 2, 4]),
       sigma=st.floats(1.0, 4.0), seed=st.integers(0, 2**16))
def test_round_trip_error_is_bounded(name, w, h, stride, sigma, seed):
    sizes = {"input_size": (w * stride, h * stride), "heatmap_size": (w, h)}
    codec = build_codec({"type": name, "sigma": sigma}, **sizes)
    g = torch.Generator().manual_seed(seed)
    # any point of the input image; msra keeps its rounded peak on the map (u < size - 0.5)
    hi = torch.tensor([w - 0.51, h - 0.51]) if name == "msra" else torch.tensor([w - 1.0, h - 1.0])
    u = torch.rand(3, 5, 2, generator=g) * hi
    kp = codec.to_input(u)
    hm = codec.encode(kp, torch.ones(3, 5))[0]
    out, conf = codec.decode(hm)
    err = (codec.to_heatmap(out) - u).abs()
    assert err.max() <= BOUND[name]
    assert torch.equal(conf, hm.flatten(2).amax(-1))  # confidence = heatmap maximum


def test_msra_error_is_the_rounding_error():
    codec = build_codec("msra", input_size=(192, 256), heatmap_size=(48, 64))
    u = torch.tensor([[[10.3, 20.0], [10.7, 20.0], [10.0, 20.49]]])
    out, _ = codec.decode(codec.encode(codec.to_input(u), torch.ones(1, 3))[0])
    # peaks at round(u): (10, 20), (11, 20), (10, 20); symmetric targets -> no quarter shift
    assert codec.to_heatmap(out).tolist() == [[[10.0, 20.0], [11.0, 20.0], [10.0, 20.0]]]


def test_soft_argmax_by_hand_and_differentiable():
    codec = build_codec({"type": "udp", "refine": "soft_argmax"}, input_size=(8, 8), heatmap_size=(8, 8))
    s = torch.zeros(1, 1, 8, 8)
    s[0, 0, 3, 2], s[0, 0, 3, 5], s[0, 0, 6, 5] = 1.0, 2.0, 1.0
    out, conf = codec.decode(s)
    # x = (1*2 + 2*5 + 1*5) / 4 = 4.25; y = (1*3 + 2*3 + 1*6) / 4 = 3.75; identity map (8 -> 8)
    assert out.tolist() == [[[4.25, 3.75]]] and conf.item() == 2.0
    from kpdet.codecs.refine import soft_argmax

    x = (0.1 + torch.rand(1, 2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    assert torch.autograd.gradcheck(soft_argmax, (x.requires_grad_(),))  # float64 end to end


def test_soft_argmax_on_an_interior_gaussian():
    codec = build_codec({"type": "udp", "refine": "soft_argmax", "radius_factor": 6},
                        input_size=(64, 64), heatmap_size=(64, 64))
    kp = torch.tensor([[[30.3, 25.8]]])
    out, _ = codec.decode(codec.encode(kp, torch.ones(1, 1))[0])
    assert (out - kp).abs().max() < 1e-4  # symmetric, untruncated by the map: mean = centre


@pytest.mark.parametrize("name", ["dark", "udp"])
def test_dark_border_band_beats_mmpose(name):
    """Keypoints 1-6 heatmap px from the border (MMPose: 0.4-0.45 input px error there)."""
    codec = build_codec({"type": name, "sigma": 2.0}, input_size=(192, 256), heatmap_size=(48, 64))
    g = torch.Generator().manual_seed(0)
    d = 1 + 5 * torch.rand(200, generator=g)  # distance to the left / top border
    other = 6 + 30 * torch.rand(200, generator=g)
    u = torch.stack([torch.cat([d, other]), torch.cat([other, d])], dim=-1)[None]
    kp = codec.to_input(u)
    out, _ = codec.decode(codec.encode(kp, torch.ones(1, 400))[0])
    assert (out - kp).norm(dim=-1).mean() < 0.01 * math.sqrt(2)
