"""Bottom-up multi-instance pose targets and grouping (kpdet.codecs.pose)."""
import torch

from kpdet.codecs import build_codec
from kpdet.codecs.offset import OffsetCodec
from kpdet.codecs.pose import decode_pose, displacement_targets, encode_pose_targets
from kpdet.losses import build_loss
from kpdet.losses.displacement import WithDisplacementLoss


def _codec():
    return OffsetCodec(build_codec({"type": "msra", "sigma": 1.0, "one_positive": True},
                                   input_size=(64, 64), heatmap_size=(32, 32)), radius=1)


def test_displacements_by_hand():
    # heatmap = input / 2. Centre (20.6, 10.2) input px -> (10.3, 5.1) -> nearest pixel (10, 5).
    # Keypoint 0 at (30.0, 4.0) -> (15, 2): displacement (5, -3); keypoint 1 invisible.
    codec = _codec().codec
    targets, mask = displacement_targets(codec, torch.tensor([[[[30.0, 4.0], [1.0, 1.0]]]]),
                                         torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[20.6, 10.2]]]))
    assert mask[0, 0].nonzero().tolist() == [[5, 10]] and mask[0, 1].sum() == 0
    assert targets[0, 0, :, 5, 10].tolist() == [5.0, -3.0]


def test_perfect_outputs_decode_to_every_instance_exactly():
    codec = _codec()
    # two figures of K = 3 keypoints, well apart; the third slot is padding; one keypoint unlabelled
    keypoints = torch.tensor([[[[10.3, 12.7], [14.9, 20.2], [8.4, 26.1]],
                               [[44.2, 30.6], [50.5, 38.3], [41.7, 45.8]],
                               [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]]])
    visible = torch.tensor([[[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])
    centres = torch.tensor([[[11.0, 19.0], [46.0, 38.0], [0.0, 0.0]]])
    present = torch.tensor([[1.0, 1.0, 0.0]])
    targets, weights = encode_pose_targets(codec, keypoints, visible, centres, present)
    (maps, offsets, _), disp, _ = targets
    assert maps.shape == (1, 4, 32, 32) and weights.shape == (1, 4) and disp.shape == (1, 3, 2, 32, 32)
    assert (maps[0, 3] == 1.0).sum() == 2  # two centre peaks, padding drew none
    found = decode_pose(codec, maps, offsets, disp, max_instances=5, threshold=0.5)
    assert found["keep"].sum() == 2
    order = found["instance_scores"][0].argsort(descending=True)[:2]
    got = found["keypoints"][0, order]
    got = got[got[:, 0, 0].argsort()]  # left figure first
    labelled = visible[0, :2] > 0
    torch.testing.assert_close(got[labelled], keypoints[0, :2][labelled], atol=1e-4, rtol=0)
    # the unlabelled keypoint has no peak to snap to: it keeps the regressed (zero) displacement,
    # i.e. the centre pixel (46 / 2 = 23, 19) -> input px (46, 38), with the map's score there
    torch.testing.assert_close(got[1, 1], torch.tensor([46.0, 38.0]))


def test_the_loss_adds_the_displacement_l1():
    # K = 1, heatmap part all zero against zero targets (mse 0); displacement channels (2 of them)
    # predict (1, 1) where the target is (3, -1): L1 = (|1 - 3| + |1 + 1|) / 2 = 2, times weight 0.5 = 1.
    pred = torch.zeros(1, 2 + 2, 4, 4)
    pred[0, 2:, 1, 1] = 1.0
    disp = torch.zeros(1, 1, 2, 4, 4)
    disp[0, 0, :, 1, 1] = torch.tensor([3.0, -1.0])
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, 1, 1] = 1
    loss = WithDisplacementLoss(build_loss("mse"), 0.5)
    assert loss(pred, (torch.zeros(1, 2, 4, 4), disp, mask)).item() == 1.0
