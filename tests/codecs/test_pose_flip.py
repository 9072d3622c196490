"""Flip testing for bottom-up multi-instance pose (kpdet.predict.PosePredictor with flip_index)."""
import torch
import torch.nn.functional as F
from torch import nn

from kpdet.codecs import build_codec
from kpdet.codecs.flip import flip_displacements
from kpdet.codecs.offset import OffsetCodec
from kpdet.predict import PosePredictor


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
    # joint 0 dy <- [0, 0, 1, 0] -> reversed [0, 1, 0, 0] -> [0, .25, .75, 0]; with [0, 1, 0, 0]: [0, .625, .375, 0]
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
