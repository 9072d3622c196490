"""kpdet's bottom-up decoders agree with the per-image CenterNet-style reference
(benchmarks/reference_decode.py, the baseline of benchmarks/bottom_up_decode.py)."""
import sys
from pathlib import Path

import torch

from kpdet.codecs import build_codec
from kpdet.codecs.instances import decode_points
from kpdet.codecs.offset import OffsetCodec
from kpdet.codecs.pose import decode_pose

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from reference_decode import per_image, points_one_image, pose_one_image  # noqa: E402

STRIDE = (4.0, 4.0)  # msra, input 64 x 48 -> heatmap 16 x 12: input px = 4 * heatmap px


def _codec():
    return OffsetCodec(build_codec({"type": "msra", "sigma": 1.0}, input_size=(64, 48),
                                   heatmap_size=(16, 12)))


def _two_figures():
    """K = 2 keypoint maps + the centre map (channel 2) on a 16 x 12 heatmap, one image."""
    scores, offsets = torch.zeros(1, 3, 12, 16), torch.zeros(1, 3, 2, 12, 16)
    disp = torch.zeros(1, 2, 2, 12, 16)
    for (x, y), s in (((4, 5), 0.9), ((11, 6), 0.7), ((8, 1), 0.05)):  # centres A, B and a weak one
        scores[0, 2, y, x] = s
    disp[0, :, :, 5, 4] = torch.tensor([[-2.0, -3.0], [1.0, 3.0]])  # A regresses k0 (2, 2), k1 (5, 8)
    disp[0, :, :, 6, 11] = torch.tensor([[-1.5, -2.0], [2.0, 3.0]])  # B regresses k0 (9.5, 4), k1 (13, 9)
    # keypoint peaks (x, y, score, offset)
    peaks = ((0, 2, 3, 0.8, (0.25, -0.5)), (0, 10, 4, 0.6, (0.0, 0.0)), (1, 5, 9, 0.5, (-0.5, 0.0)),
             (1, 13, 9, 0.05, (0.0, 0.0)), (1, 14, 2, 0.9, (0.0, 0.0)))
    for k, x, y, s, off in peaks:
        scores[0, k, y, x] = s
        offsets[0, k, :, y, x] = torch.tensor(off)
    return scores, offsets, disp


def test_two_figures_by_hand_both_decoders():
    # A (centre score 0.9): k0 regressed (2, 2); nearest peak (2, 3) + (0.25, -0.5) = (2.25, 2.5) at
    #   sqrt(0.25^2 + 0.5^2) = 0.56 px; radius = max(2, 0.3 * extent) with extent = max(5 - 2, 8 - 2) = 6
    #   -> 2: snapped, input px (9, 10), score 0.8. k1 regressed (5, 8); peak (5, 9) - (0.5, 0) =
    #   (4.5, 9) at sqrt(0.25 + 1) = 1.12 <= 2: snapped, (18, 36), score 0.5.
    # B (0.7): k0 regressed (9.5, 4); peak (10, 4) at 0.5: snapped, (40, 16), score 0.6. k1 regressed
    #   (13, 9): the peak there scores 0.05 <= threshold 0.1 (not a peak); the nearest real one,
    #   (14, 2), is sqrt(1 + 49) = 7.07 px away > radius max(2, 0.3 * 5) = 2: not snapped, stays
    #   (13, 9) -> (52, 36) with the map's score there, 0.05.
    # The third centre (0.05) is found but not kept.
    scores, offsets, disp = _two_figures()
    params = {"max_instances": 3, "threshold": 0.1, "kernel": 3, "snap_fraction": 0.3, "max_peaks": 4}
    ours = decode_pose(_codec(), scores, offsets, disp, **params)
    ref = per_image(pose_one_image, scores, offsets, disp, stride=STRIDE, **params)
    want = torch.tensor([[[9.0, 10.0], [18.0, 36.0]], [[40.0, 16.0], [52.0, 36.0]]])
    for found in (ours, ref):
        assert found["keep"][0].tolist() == [True, True, False]
        torch.testing.assert_close(found["instance_scores"][0], torch.tensor([0.9, 0.7, 0.05]))
        torch.testing.assert_close(found["keypoints"][0, :2], want)
        torch.testing.assert_close(found["scores"][0, :2], torch.tensor([[0.8, 0.5], [0.6, 0.05]]))


def _blobs(shape, count, g):
    """Gaussian peaks (sigma 1.5 px) at random places and heights plus background noise."""
    B, C, H, W = shape
    centres = torch.rand(B, C, count, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    heights = 0.2 + 0.8 * torch.rand(B, C, count, 1, 1, generator=g)
    gx = torch.exp(-(torch.arange(W) - centres[..., 0:1]) ** 2 / 4.5)[..., None, :]
    gy = torch.exp(-(torch.arange(H) - centres[..., 1:2]) ** 2 / 4.5)[..., :, None]
    return (heights * gy * gx).amax(2) + 0.05 * torch.rand(B, C, H, W, generator=g)


def test_random_maps_same_detections():
    # maps like a trained model's, batch 3: every kept detection the same in both decoders
    g = torch.Generator().manual_seed(0)
    scores = _blobs((3, 4, 12, 16), 3, g)
    offsets = torch.rand(3, 4, 2, 12, 16, generator=g) - 0.5
    disp = 4 * torch.randn(3, 3, 2, 12, 16, generator=g)
    params = {"max_instances": 4, "threshold": 0.1, "kernel": 3, "snap_fraction": 0.3, "max_peaks": 6}
    ours = decode_pose(_codec(), scores, offsets, disp, **params)
    ref = per_image(pose_one_image, scores, offsets, disp, stride=STRIDE, **params)
    keep = ours["keep"]
    assert torch.equal(keep, ref["keep"]) and keep.sum() >= 6
    for key in ("keypoints", "scores", "instance_scores"):
        torch.testing.assert_close(ours[key][keep], ref[key][keep], atol=1e-5, rtol=0)
    points = decode_points(_codec(), scores, offsets, max_peaks=8, threshold=0.1)
    ref = per_image(points_one_image, scores, offsets, stride=STRIDE, max_peaks=8, threshold=0.1)
    keep = points["keep"]
    assert torch.equal(keep, ref["keep"]) and keep.sum() >= 20
    torch.testing.assert_close(points["points"][keep], ref["points"][keep], atol=1e-5, rtol=0)
    torch.testing.assert_close(points["scores"][keep], ref["scores"][keep], atol=0, rtol=0)
