import urllib.error

import pytest
import torch
import torchvision

from kpdet.models import SIGMOID_PRIOR_BIAS, build_model, output_stride


def test_heatmap_shape_is_input_over_four():
    model = build_model("resnet18", num_keypoints=5, head_channels=32)
    assert model(torch.zeros(2, 3, 64, 96)).shape == (2, 5, 16, 24)
    assert output_stride(3) == 4


def test_sigmoid_prior_bias_starts_outputs_near_0_1():
    model = build_model("resnet18", num_keypoints=3, head_channels=16, final_bias=SIGMOID_PRIOR_BIAS).eval()
    scores = torch.sigmoid(model(torch.randn(1, 3, 64, 64)))
    # weights start at std 0.001, so logits ~ bias: sigmoid(-2.19) = 1 / (1 + e^2.19) = 0.1006
    assert scores.mean().item() == pytest.approx(0.1006, abs=0.005)


def test_pretrained_from_local_file(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    model = build_model("resnet18", num_keypoints=2, pretrained=str(path))
    assert torch.equal(model.backbone.body[0].weight, reference.conv1.weight)


def test_missing_weights_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="model.pretrained='/nope.pth': no such file"):
        build_model("resnet18", num_keypoints=2, pretrained="/nope.pth")


def test_imagenet_offline_says_how_to_pass_a_local_file(monkeypatch):
    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match=r"Offline\? Download https://.*resnet18.* pass model.pretrained="):
        build_model("resnet18", num_keypoints=2, pretrained="imagenet")


def test_ordinal_head_shapes_and_registry():
    from kpdet.models import HEADS, head_target_kind

    # 64 x 96 input, stride 32 -> 2 x 3, one deconvolution -> 4 x 6 = 24 features per keypoint
    model = build_model("resnet18", 5, head_channels=16, num_deconv=1, head="ordinal_xy", input_size=(64, 96),
                        bins=(128, 192))
    x, y = model(torch.zeros(2, 3, 96, 64))
    assert x.shape == (2, 5, 128) and y.shape == (2, 5, 192)
    assert model.head.x.in_features == 24
    assert head_target_kind("ordinal_xy") == "ordinal" and head_target_kind("heatmap") == "heatmap"
    with pytest.raises(KeyError, match="unknown head 'simcc'; known: heatmap, ordinal_xy"):
        HEADS.get("simcc")


def test_centernet_head_conv_and_init_options():
    plain = build_model("resnet18", num_keypoints=3, head_channels=16, final_bias=-4.6, init_std=0.01)
    with_conv = build_model("resnet18", num_keypoints=3, head_channels=16, head_conv=8)
    assert isinstance(plain.head.conv, torch.nn.Identity)
    conv = with_conv.head.conv[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (16, 8, (3, 3))
    assert with_conv(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 16, 16)
    # init_std sets the normal init of the deconvolutions and the final 1x1; final_bias its bias
    assert plain.head.final.weight.std().item() == pytest.approx(0.01, rel=0.2)
    assert torch.all(plain.head.final.bias == -4.6)
    # the 3x3 conv keeps PyTorch's Kaiming-uniform init: bound 1 / sqrt(fan_in) = 1 / sqrt(16 * 9) = 0.083
    assert conv.weight.abs().max().item() == pytest.approx(1 / 12, rel=0.1)
