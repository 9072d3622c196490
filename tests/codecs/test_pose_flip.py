"""Flip testing for bottom-up multi-instance pose (kpdet.predict.PosePredictor with flip_index)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kpdet.codecs import build_codec
from kpdet.codecs.flip import flip_displacements
from kpdet.codecs.offset import OffsetCodec
from kpdet.predict import PosePredictor

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small ops: 1 thread is faster here


class TwoFaced(nn.Module):
    """Fixed outputs: `plain` for an image whose marker pixel (top left) is lit, `mirror` for its
    mirror (marker top right): the two passes of a flip test see different maps."""

    def __init__(self, plain: torch.Tensor, mirror: torch.Tensor):
        super().__init__()
        self.plain, self.mirror, self.calls = plain, mirror, 0

    def forward(self, images):
        self.calls += 1
        return self.plain if images[0, 0, 0, 0] > 0 else self.mirror


def _outputs(rows: dict[int, list[float]]) -> torch.Tensor:
    """Head output [1, 13, 2, 4]: channel -> row 0 of the map (row 1 stays 0)."""
    out = torch.zeros(1, 13, 2, 4)
    for channel, row in rows.items():
        out[0, channel, 0] = torch.tensor(row)
    return out


def test_flipped_displacements_swap_joints_and_negate_dx():
    # K = 2, (dx, dy), W = 3: joint 0 dx [0, 1, 2], dy [3, 4, 5]; joint 1 dx [6, 7, 8], dy [9, 10, 11]
    d = torch.arange(2 * 2 * 3, dtype=torch.float32).view(1, 2, 2, 1, 3)
    back = flip_displacements(d, [1, 0])
    assert back[0, 0, 0, 0].tolist() == [-8.0, -7.0, -6.0]  # joint 1's dx, mirrored, negated
    assert back[0, 0, 1, 0].tolist() == [11.0, 10.0, 9.0]  # its dy, mirrored only
    assert back[0, 1, 0, 0].tolist() == [-2.0, -1.0, -0.0]


def test_averaged_maps_and_displacements_by_hand():
    # K = 2 joints (flip_index [1, 0]: a left/right pair) + centre, msra at stride 4 (input 16 x 8,
    # maps 4 x 2) with offsets: channels 0-2 heat (joint 0, joint 1, centre), 3-8 offsets
    # (dx, dy per heat channel), 9-12 displacements (dx0, dy0, dx1, dy1). Identity activation.
    # Mapping a mirrored row g back: reverse it, then shift by +0.75 px
    # (codec.flip_shift): out[j] = 0.25 g[j] + 0.75 g[j - 1], g[-1] = 0.
    plain = _outputs({0: [0, 0, 1.0, 0], 1: [0, 0.4, 0, 0], 2: [0, 0.6, 0, 0],
                      3: [0, 0, 0.3, 0], 4: [0, 0, 0.2, 0], 5: [0, 0.1, 0, 0], 6: [0, -0.1, 0, 0],
                      9: [0, 2, 0, 0], 10: [0, 1, 0, 0], 11: [0, -1, 0, 0], 12: [0, 0.5, 0, 0]})
    mirror = _outputs({0: [0, 0, 0.2, 0], 1: [0, 0, 0.8, 0], 2: [0, 0, 0.4, 0],
                       3: [9, 9, 9, 9], 5: [9, 9, 9, 9], 7: [9, 9, 9, 9],  # offsets: never read
                       9: [0, 0, 2, 0], 11: [0, 0, -3, 0], 12: [0, 0, 1, 0]})
    codec = OffsetCodec(build_codec("msra", input_size=(16, 8), heatmap_size=(4, 2), sigma=1.0))
    assert codec.flip_shift == 0.75
    model = TwoFaced(plain, mirror)
    images = torch.zeros(1, 3, 8, 16)
    images[0, 0, 0, 0] = 1.0
    predictor = PosePredictor(model, codec, "identity", 2, [1, 0], max_instances=4, threshold=0.1)
    scores, offsets, disp = predictor.outputs(images)
    assert model.calls == 2
    # joint 0 <- mirror's joint 1 [0, 0, .8, 0] -> reversed [0, .8, 0, 0] -> [0, .2, .6, 0];
    #   mean with [0, 0, 1, 0]: [0, .1, .8, 0]
    # joint 1 <- mirror's joint 0 [0, 0, .2, 0] -> [0, .05, .15, 0]; with [0, .4, 0, 0]: [0, .225, .075, 0]
    # centre <- mirror's centre [0, 0, .4, 0] -> [0, .1, .3, 0]; with [0, .6, 0, 0]: [0, .35, .15, 0]
    expected = torch.tensor([[0, 0.1, 0.8, 0], [0, 0.225, 0.075, 0], [0, 0.35, 0.15, 0]])
    torch.testing.assert_close(scores[0, :, 0], expected)
    assert scores[0, :, 1].abs().max() == 0
    # joint 0 dx <- mirror's joint 1 dx [0, 0, -3, 0] -> reversed, negated [0, 3, 0, 0] -> [0, .75, 2.25, 0];
    #   mean with [0, 2, 0, 0]: [0, 1.375, 1.125, 0]
    # joint 0 dy <- [0, 0, 1, 0] -> reversed [0, 1, 0, 0] -> [0, .25, .75, 0];
    #   with [0, 1, 0, 0]: [0, .625, .375, 0]
    # joint 1 dx <- mirror's joint 0 dx [0, 0, 2, 0] -> [0, -2, 0, 0] -> [0, -.5, -1.5, 0];
    #   with [0, -1, 0, 0]: [0, -.75, -.75, 0]
    # joint 1 dy <- 0; with [0, .5, 0, 0]: [0, .25, 0, 0]
    expected = torch.tensor([[[0, 1.375, 1.125, 0], [0, 0.625, 0.375, 0]],
                             [[0, -0.75, -0.75, 0], [0, 0.25, 0, 0]]])
    torch.testing.assert_close(disp[0, :, :, 0], expected)
    # offsets are the unflipped pass's (CenterNet reads reg / hp_offset from the original image only)
    torch.testing.assert_close(offsets, plain[:, 3:9].reshape(1, 3, 2, 2, 4))
    # Decoding the averaged maps: one centre peak at (1, 0), score .35 ((2, 0), .15, is suppressed).
    # Joint 0 regresses to (1 + 1.375, 0 + .625) and snaps to its peak (2, 0) + offset (.3, .2);
    # joint 1 regresses to (.25, .25) and snaps to (1, 0) + (.1, -.1). Input px = 4 x heatmap px.
    found = predictor(images)
    assert found["keep"][0].tolist() == [True, False, False, False]
    torch.testing.assert_close(found["instance_scores"][0, 0], torch.tensor(0.35))
    torch.testing.assert_close(found["keypoints"][0, 0], torch.tensor([[9.2, 0.8], [4.4, -0.4]]))
    torch.testing.assert_close(found["scores"][0, 0], torch.tensor([0.8, 0.225]))


def _box(maps: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum over the (2 radius + 1)^2 window of each pixel, zeros beyond the map: mirror-symmetric."""
    return F.avg_pool2d(maps, 2 * radius + 1, 1, radius, count_include_pad=True) * (2 * radius + 1) ** 2


def _centroid_field(maps: torch.Tensor, radius: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, 2, H, W]: the mass centroid of each pixel's window minus the pixel."""
    H, W = maps.shape[-2:]
    y, x = torch.meshgrid(torch.arange(H, dtype=maps.dtype), torch.arange(W, dtype=maps.dtype), indexing="ij")
    mass = _box(maps, radius) + 1e-6
    return torch.stack([_box(maps * x, radius) / mass - x, _box(maps * y, radius) / mass - y], 2)


class MirrorAware(nn.Module):
    """A 'trained' pose model as a fixed function of the image, with its maps mirror-consistent.

    Channel 0 of the image draws the keypoints, channel 2 the figure centres (Gaussian blobs).
    Sampled at the heatmap pixels (x = stride u, msra's map), a dot is the *left* joint when it
    lies left of the centroid of the centre mass around it (radius 8), else the right one, so a
    mirrored figure swaps its joints as flip_index [1, 0] says. Displacements: the centroid of
    each joint map within radius 8 minus the pixel; offsets: the 3 x 3 centroid of each map.
    Mirroring the image mirrors every map, swaps the joints and negates dx (windows are symmetric)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride, self.calls = stride, 0

    def forward(self, images):
        self.calls += 1
        sampled = images[:, :, ::self.stride, ::self.stride]
        dots, centres = sampled[:, 0:1], sampled[:, 2:3]
        left = torch.sigmoid(4.0 * _centroid_field(centres, 8)[:, :, 0])  # centre mass to the right
        heat = torch.cat([dots * left, dots * (1 - left), centres], 1)
        offsets = _centroid_field(heat, 1).flatten(1, 2)
        displacements = _centroid_field(heat[:, :2], 8).flatten(1, 2)
        return torch.cat([heat, offsets, displacements], 1)


def _figures_image(stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two lopsided figures (no mirror symmetry) on a 48 x 40 heatmap grid, drawn at input px
    (stride x heatmap px), sigma 1.5 heatmap px -> (image [1, 3, 40 s, 48 s], keypoints [2, 2, 2]
    input px: per figure the left then the right joint)."""
    centres = torch.tensor([[12.0, 12.0], [34.0, 26.0]])
    joints = torch.tensor([[[7.0, 10.0], [17.0, 15.0]], [[29.0, 29.0], [38.0, 22.0]]])
    H, W = 40 * stride, 48 * stride
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                          indexing="ij")

    def blobs(points):
        d2 = (x - stride * points[:, 0, None, None]) ** 2 + (y - stride * points[:, 1, None, None]) ** 2
        return torch.exp(-d2 / (2 * (1.5 * stride) ** 2)).amax(0)

    image = torch.zeros(1, 3, H, W)
    image[0, 0], image[0, 2] = blobs(joints.reshape(-1, 2)), blobs(centres)
    return image, joints * stride


def test_a_mirror_consistent_model_gives_the_same_detections_with_flip_test():
    # stride 1 (input = map, flip shift 0): the mirrored pass maps back exactly, so every map is the
    # same with and without flip testing. stride 2 (msra, shift +0.5 px): the mirrored pass samples
    # the image between the original's samples; mapped back and linearly interpolated, the
    # averaged maps differ a little, but the peaks stay on the same pixels, the offsets are the
    # unflipped pass's and the keypoints snap to the peaks: the same detections, scores close.
    for stride in (1, 2):
        image, truth = _figures_image(stride)
        codec = OffsetCodec(build_codec("msra", input_size=(48 * stride, 40 * stride), heatmap_size=(48, 40),
                                        sigma=1.5))
        model = MirrorAware(stride)
        # not a trivially symmetric setup: the mirror's raw maps differ from the mirrored raw maps
        raw, mirrored = model(image), model(image.flip(-1))
        assert (mirrored[:, :2] - raw[:, :2].flip(-1)).abs().max() > 0.9
        decode = {"max_instances": 5, "threshold": 0.3}
        plain = PosePredictor(model, codec, "identity", 2, **decode)
        flipped = PosePredictor(model, codec, "identity", 2, [1, 0], **decode)
        model.calls = 0
        without, with_flip = plain(image), flipped(image)
        assert model.calls == 3  # one pass without, two with the flip test
        assert without["keep"][0].sum() == 2 and torch.equal(without["keep"], with_flip["keep"])
        keep = without["keep"][0]
        got = without["keypoints"][0][keep]
        got = got[got[:, 0, 0].argsort()]  # the left figure first
        torch.testing.assert_close(got, truth, atol=0.05 * stride, rtol=0)  # sanity: the drawn joints
        torch.testing.assert_close(with_flip["keypoints"][0][keep], without["keypoints"][0][keep])
        # stride 2 measured: scores and maps within 0.027, displacements at the centres within 0.005;
        # without the +0.5 px shift (mirroring alone, as CenterNet's flip_tensor) the maps differ
        # by 0.098 and the displacements by 0.25, with -0.5 by 0.19 and 0.50.
        tolerance = 1e-5 if stride == 1 else 0.05
        for key in ("scores", "instance_scores"):
            torch.testing.assert_close(with_flip[key][0][keep], without[key][0][keep], atol=tolerance, rtol=0)
        (a, _, da), (b, _, db) = flipped.outputs(image), plain.outputs(image)
        torch.testing.assert_close(a, b, atol=tolerance, rtol=0)  # keypoint and centre maps everywhere
        # displacements where they are read, the centre pixels (elsewhere they carry no mass)
        torch.testing.assert_close(da[..., [12, 26], [12, 34]], db[..., [12, 26], [12, 34]],
                                   atol=1e-4 if stride == 1 else 0.02, rtol=0)


def test_a_flip_index_of_the_wrong_length_is_refused():
    codec = build_codec("msra", input_size=(16, 8), heatmap_size=(4, 2))
    with pytest.raises(ValueError, match="flip_index has 3 entries for 2 keypoints"):
        PosePredictor(nn.Identity(), codec, "identity", 2, [1, 0, 2])
