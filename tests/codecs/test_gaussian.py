"""Target rendering: per-keypoint sigma, one positive, CornerNet radius, no denormals."""
import math

import pytest
import torch

from kpdet.codecs import build_codec, cornernet_radius, sigma_from_radius
from kpdet.keypoints import COCO_SIGMAS

SIZES = {"input_size": (64, 48), "heatmap_size": (16, 12)}  # stride 4


def test_per_keypoint_sigma_list_and_coco_oks():
    codec = build_codec({"type": "msra", "sigma": [1.0, 2.0]}, **SIZES)
    hm, _ = codec.encode(torch.tensor([[[20.0, 20.0], [20.0, 20.0]]]), torch.ones(1, 2))
    # centre (5, 5); one pixel to the right: exp(-1 / (2 sigma_k^2))
    assert hm[0, 0, 5, 6].item() == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert hm[0, 1, 5, 6].item() == pytest.approx(math.exp(-1 / 8), rel=1e-6)
    coco = build_codec({"type": "udp", "sigma": "coco_oks", "oks_scale": 30.0}, **SIZES)
    assert coco.sigma.tolist() == pytest.approx([30 * s for s in COCO_SIGMAS])  # nose: 0.78
    with pytest.raises(ValueError, match="2 sigmas for 3 keypoints"):
        codec.encode(torch.zeros(1, 3, 2), torch.ones(1, 3))


@pytest.mark.parametrize("mode, tolerance", [(True, 0.1), ("scale", 1e-3)])
@pytest.mark.parametrize("name", ["dark", "udp"])
def test_one_positive_gives_exactly_one_peak_per_visible_keypoint(name, mode, tolerance):
    codec = build_codec({"type": name, "sigma": 2.0, "one_positive": mode}, **SIZES)
    u = torch.tensor([[[3.5, 4.5], [7.25, 2.0], [-1.2, 5.3], [15.6, 11.4], [8.0, 8.0], [9.0, 9.0]]])
    kp = codec.to_input(u)  # .5 ties, a centre left of the map, one past the far corner, one invisible
    vis = torch.tensor([[1, 1, 1, 1, 1, 0]])
    hm, w = codec.encode(kp, vis)
    assert w.tolist() == [[1, 1, 1, 1, 1, 0]]
    ones = (hm == 1.0).flatten(2)
    assert ones.sum(-1).tolist() == [[1, 1, 1, 1, 1, 0]]
    # the positive is the in-map pixel nearest the centre: floor(u + 0.5) clamped to the map
    expect = [(4, 5), (7, 2), (0, 5), (15, 11), (8, 8)]
    got = [(int(i) % 16, int(i) // 16) for i in ones[0, :5].float().argmax(-1)]
    assert got == expect
    # "scale" keeps the log's centre (decoding unchanged); "set" (the contract's rule: only
    # the nearest pixel raised to 1.0) moves DARK's estimate: 0.005 input px on average in the
    # interior, 0.08 at a .5 tie (the first point), the worst case
    plain = build_codec({"type": name, "sigma": 2.0}, **SIZES)
    inner = [0, 1, 4]
    assert torch.allclose(codec.decode(hm)[0][:, inner], plain.decode(plain.encode(kp, vis)[0])[0][:, inner],
                          atol=tolerance)
    if mode is True:  # every other pixel is the plain Gaussian
        plain_hm = plain.encode(kp, vis)[0]
        assert torch.equal(hm[ones.view_as(hm) == 0], plain_hm[ones.view_as(hm) == 0])


def test_msra_peak_is_exact_and_one_positive_covers_off_map_centres():
    codec = build_codec({"type": "msra", "sigma": 2.0}, **SIZES)
    # x < 62 -> u = x / 4 < 15.5 rounds to a pixel of the 16-wide map (x in [62, 63] rounds to 16)
    hm, _ = codec.encode(torch.rand(4, 5, 2) * torch.tensor([61.9, 45.9]), torch.ones(4, 5))
    assert (hm == 1.0).flatten(2).sum(-1).eq(1).all()
    # x = 70 -> u = 17.5 -> pixel 18, off the 16-wide map but its Gaussian reaches column 15
    off = torch.tensor([[[70.0, 20.0]]])
    hm, w = codec.encode(off, torch.ones(1, 1))
    assert w.item() == 1 and (hm == 1.0).sum() == 0 and hm.max().item() == pytest.approx(math.exp(-9 / 8))
    hm, w = build_codec({"type": "msra", "one_positive": True}, **SIZES).encode(off, torch.ones(1, 1))
    assert (hm == 1.0).sum() == 1 and hm[0, 0, 5, 15] == 1.0


def test_no_denormals_far_from_the_centre():
    codec = build_codec({"type": "udp", "sigma": 1.0, "radius_factor": 100.0},
                        input_size=(256, 256), heatmap_size=(64, 64))
    hm, _ = codec.encode(torch.tensor([[[0.0, 0.0]]]), torch.ones(1, 1))
    tiny = torch.finfo(torch.float32).tiny  # smallest normal, 1.2e-38
    assert ((hm > 0) & (hm < tiny)).sum() == 0
    # exp(-40) per axis is kept, beyond is exactly 0: sqrt(80) = 8.94 px per axis
    assert hm[0, 0, 0, 8] > 0 and hm[0, 0, 0, 9] == 0


def test_cornernet_radius_by_hand():
    # 10 x 10 box, t = 0.7:
    #   shift:  r^2 - 20 r + 100 * 0.3 / 1.7 = 0      -> r = (20 - sqrt(400 - 70.588)) / 2 = 0.9251
    #   shrink: 4 r^2 - 40 r + 30 = 0                 -> r = (40 - sqrt(1600 - 480)) / 8 = 0.8167
    #   grow:   2.8 r^2 + 28 r - 30 = 0               -> r = (-28 + sqrt(784 + 336)) / 5.6 = 0.9761
    # (upstream's (b + sqrt) / 2 gives min(19.07, 36.73, 9.73) = 9.73: IoU would be ~0.1)
    r = cornernet_radius(torch.tensor(10.0), torch.tensor(10.0), 0.7).item()
    assert r == pytest.approx((40 - math.sqrt(1120)) / 8, rel=1e-5)
    assert sigma_from_radius(torch.tensor(r)).item() == pytest.approx((2 * r + 1) / 6)


@pytest.mark.parametrize("w,h,t", [(10.0, 10.0, 0.7), (40.0, 6.0, 0.7), (5.0, 80.0, 0.5), (3.0, 3.0, 0.9)])
def test_cornernet_radius_keeps_iou_in_all_three_cases(w, h, t):
    r = cornernet_radius(torch.tensor(w), torch.tensor(h), t).item()
    shift = (w - r) * (h - r) / (2 * w * h - (w - r) * (h - r))
    shrink = (w - 2 * r) * (h - 2 * r) / (w * h)
    grow = w * h / ((w + 2 * r) * (h + 2 * r))
    assert min(shift, shrink, grow) == pytest.approx(t, rel=1e-4)  # the binding case is exactly t
    assert min(shift, shrink, grow) >= t - 1e-5


def test_sizes_give_cornernet_sigmas():
    codec = build_codec({"type": "udp", "min_overlap": 0.7}, input_size=(64, 64), heatmap_size=(64, 64))
    box = torch.tensor([[[10.0, 10.0]]])
    hm, _ = codec.encode(torch.tensor([[[30.0, 30.0]]]), torch.ones(1, 1), sizes=box)
    r = (40 - math.sqrt(1120)) / 8
    sigma = (2 * r + 1) / 6  # 0.439
    assert hm[0, 0, 30, 31].item() == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_encode_decode_on_cuda_match_cpu():
    codec = build_codec({"type": "udp"}, input_size=(192, 256), heatmap_size=(48, 64))
    kp, vis = torch.rand(8, 17, 2) * 190, torch.rand(8, 17) > 0.2
    hm, w = codec.encode(kp.cuda(), vis.cuda())
    assert hm.device.type == "cuda"
    hm_cpu, w_cpu = codec.encode(kp, vis)
    assert torch.allclose(hm.cpu(), hm_cpu, atol=1e-6) and torch.equal(w.cpu(), w_cpu)
    assert torch.allclose(codec.decode(hm)[0].cpu(), codec.decode(hm_cpu)[0], atol=1e-3)


def test_encode_into_a_buffer_matches_and_reuses_it():
    codec = build_codec("dark", **SIZES)
    kp, vis = torch.rand(3, 4, 2) * 60, torch.rand(3, 4) > 0.3
    buffer = torch.full((3, 4, 12, 16), 7.0)
    hm, w = codec.encode(kp, vis, out=buffer)
    assert hm.data_ptr() == buffer.data_ptr()
    assert torch.equal(hm, codec.encode(kp, vis)[0]) and torch.equal(w, vis.float() * w)
