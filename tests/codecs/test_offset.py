"""The offset head's targets, loss and decoding (model.offset; kpdet.codecs.offset)."""
import pytest
import torch

from kpdet.codecs import build_codec
from kpdet.codecs.offset import OffsetCodec, gather_offsets, offset_targets, split_outputs
from kpdet.losses import build_loss
from kpdet.losses.offset import WithOffsetLoss


def test_targets_on_a_tiny_map_by_hand():
    # centre (1.3, 2.6) on a 4 x 4 map: nearest pixel floor(c + 0.5) = (1, 3).
    targets, mask = offset_targets(torch.tensor([[[1.3, 2.6]]]), torch.tensor([[True]]), (4, 4), radius=0)
    assert mask[0, 0].nonzero().tolist() == [[3, 1]]  # (row y, column x)
    # at pixel (1, 3): d = c - p = (0.3, -0.4)
    torch.testing.assert_close(targets[0, 0, :, 3, 1], torch.tensor([0.3, -0.4]))
    assert targets[0, 0].abs().sum() == pytest.approx(0.7)  # nothing else is set
    # radius 1: the 3 x 3 block around (1, 3), cut by the map's bottom edge -> 3 x 2 = 6 pixels;
    # at pixel (0, 2): d = (1.3, 0.6)
    targets, mask = offset_targets(torch.tensor([[[1.3, 2.6]]]), torch.tensor([[True]]), (4, 4), radius=1)
    assert mask.sum() == 6 and mask[0, 0, 2:, 0:3].sum() == 6
    torch.testing.assert_close(targets[0, 0, :, 2, 0], torch.tensor([1.3, 0.6]))
    # an invisible keypoint trains nothing
    _, mask = offset_targets(torch.tensor([[[1.3, 2.6]]]), torch.tensor([[False]]), (4, 4), radius=1)
    assert mask.sum() == 0


def test_loss_by_hand():
    # C = 1 on a 2 x 2 map. Heatmap loss mse: target all 0, pred heatmap all 0 -> 0.
    # One trained pixel (0, 1) with target (0.3, -0.4); predicted offset there (0.5, 0.1):
    # L1 = (|0.5 - 0.3| + |0.1 + 0.4|) / (2 * 1) = 0.7 / 2 = 0.35; times weight 2 -> 0.7.
    pred = torch.zeros(1, 3, 2, 2)
    pred[0, 1, 1, 0], pred[0, 2, 1, 0] = 0.5, 0.1
    pred[0, 1, 0, 0] = 9.0  # an untrained pixel: no effect
    offsets = torch.zeros(1, 1, 2, 2, 2)
    offsets[0, 0, :, 1, 0] = torch.tensor([0.3, -0.4])
    mask = torch.zeros(1, 1, 2, 2)
    mask[0, 0, 1, 0] = 1
    loss = WithOffsetLoss(build_loss("mse"), weight=2.0)
    assert loss(pred, (torch.zeros(1, 1, 2, 2), offsets, mask)).item() == pytest.approx(0.7)
    # a channel weight of 0 removes its offsets too
    assert loss(pred, (torch.zeros(1, 1, 2, 2), offsets, mask), torch.zeros(1, 1)).item() == 0.0
    assert loss.activation == "identity"


def test_decode_recovers_a_subpixel_location_exactly_from_perfect_offsets():
    codec = OffsetCodec(build_codec({"type": "msra", "sigma": 2.0}, input_size=(64, 64),
                                    heatmap_size=(16, 16)), radius=1)
    keypoints = torch.tensor([[[21.37, 40.9], [3.05, 58.6]]])  # input px; heatmap px = / 4
    (heatmaps, offsets, mask), weights = codec.encode(keypoints, torch.ones(1, 2))
    outputs = torch.cat([heatmaps, offsets.flatten(1, 2)], 1)  # a perfect head output, activated
    decoded, confidences = codec.decode(outputs)
    torch.testing.assert_close(decoded, keypoints, atol=1e-5, rtol=0)
    assert confidences.tolist() == [[1.0, 1.0]]
    # without the offsets the msra codec is off by up to a quarter heatmap px (1 input px)
    assert (codec.codec.decode(heatmaps)[0] - keypoints).abs().max() > 0.2


def test_split_and_gather_layout():
    out = torch.arange(3 * 2 * 3 * 3, dtype=torch.float32).view(1, 6, 3, 3)
    heat, off = split_outputs(out)
    assert heat.shape == (1, 2, 3, 3) and off.shape == (1, 2, 2, 3, 3)
    # dx of channel 1 is output channel C + 2*1 = 4, dy channel 5; pixel (x=2, y=1) is index 5
    got = gather_offsets(off, torch.tensor([[[0], [2]]]), torch.tensor([[[0], [1]]]))
    assert got[0, 1, 0].tolist() == [4 * 9 + 5, 5 * 9 + 5]


def test_model_config_and_training_step_with_offsets(tiny_synthetic, tmp_path):
    """model.offset from config to a trained checkpoint's decode: build, one short fit, metrics."""
    from kpdet.config import load_config
    from kpdet.engine.runner import fit
    from tests.conftest import data_overrides

    cfg = load_config("configs/smoke.yaml", [*data_overrides(tiny_synthetic), f"work_dir={tmp_path}",
                                             "model.offset=true", "model.offset_radius=1",
                                             "train.max_iters_per_epoch=2", "eval.vis_images=1"])
    metrics = fit(cfg)
    assert 0 <= metrics["PCK@0.2"] <= 1 and metrics["EPE"] > 0
    from kpdet.build import load_checkpoint

    state = load_checkpoint(tmp_path / "best.pt")["model"]
    assert state["head.offset.weight"].shape[0] == 2 * state["head.final.weight"].shape[0]


def test_offset_with_a_bins_head_is_an_error_naming_both():
    from kpdet.build import head_kind
    from kpdet.config import load_config

    cfg = load_config("configs/synthetic/emd_ordinal.yaml", ["model.offset=true"])
    with pytest.raises(ValueError, match="model.offset.*model.head='ordinal_xy'"):
        head_kind(cfg)
