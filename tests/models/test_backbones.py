"""Trunks and the neck: HRNet against the paper's table, timm trunks, stride-chosen deconvolutions,
every head on every (small) trunk, pretrained files and their errors."""
import sys

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from kpdet.models import BACKBONES, build_backbone, build_model, neck_deconvs
from kpdet.models.hrnet import HRNetBackbone
from tests.conftest import needs_timm

SMALL = ["resnet18", "hrnet_w18_small", pytest.param("timm/resnet10t", marks=needs_timm)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pose_hrnet_on_meta(name: str, keypoints: int = 17) -> tuple[int, float]:
    """Parameters and multiply-adds of trunk + 1x1 heatmap layer at 256x192, on the meta device."""
    with torch.device("meta"):
        model = build_model(name, keypoints)
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.zeros(1, 3, 256, 192))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 2


def test_hrnet_w32_matches_the_papers_table():
    # Sun et al. CVPR 2019, Table 1: HRNet-W32, 256x192: 28.5 M parameters, 7.1 GFLOPs. The paper's
    # counter (HRNet's get_model_summary) sums conv multiply-adds and divides by 1024^3, not 1e9.
    params, macs = pose_hrnet_on_meta("hrnet_w32")
    assert params / 1e6 == pytest.approx(28.5, rel=0.05)
    assert macs / 1024**3 == pytest.approx(7.1, rel=0.05)
    with torch.device("meta"):  # W48: 63.6 M (parameters only: cheap)
        params48 = sum(p.numel() for p in build_model("hrnet_w48", 17).parameters())
    assert params48 / 1e6 == pytest.approx(63.6, rel=0.05)


def test_hrnet_keeps_the_official_parameter_names():
    """So that HRNet's and MMPose's checkpoints load by name (model.pretrained)."""
    keys = set(HRNetBackbone("hrnet_w18_small_v1").state_dict())
    for key in ("conv1.weight", "bn2.running_mean", "layer1.0.downsample.0.weight", "transition1.0.0.weight",
                "transition1.1.0.0.weight", "transition3.3.0.0.weight", "stage2.0.branches.1.0.conv2.weight",
                "stage2.0.fuse_layers.0.1.0.weight", "stage2.0.fuse_layers.1.0.0.0.weight",
                "stage4.0.fuse_layers.0.3.1.weight"):
        assert key in keys, key
    # the last module fuses into the high-resolution branch only (pose HRNet)
    assert not any(k.startswith("stage4.0.fuse_layers.1.") for k in keys)


def test_neck_is_chosen_from_strides():
    assert neck_deconvs(32, 4) == 3  # SimpleBaseline on a ResNet
    assert neck_deconvs(4, 4) == 0  # HRNet's stride-4 branch straight to the 1x1
    assert neck_deconvs(16, 4) == 2 and neck_deconvs(32, 16) == 1
    with pytest.raises(ValueError, match="stride-16 heatmaps, but hrnet_w18_small gives stride-4"):
        neck_deconvs(4, 16, "hrnet_w18_small")
    with pytest.raises(ValueError, match="power of 2"):
        neck_deconvs(24, 4)


@pytest.mark.parametrize("backbone", SMALL)
def test_every_head_on_every_trunk(backbone):
    torch.manual_seed(0)
    model = build_model(backbone, 5, head_channels=16, attribute_classes=3)
    heatmaps, classes = model(torch.randn(2, 3, 96, 64), with_attribute=True)  # H 96, W 64
    assert heatmaps.shape == (2, 5, 24, 16) and classes.shape == (2, 3)  # stride 4 on every trunk
    # every parameter gets a gradient: DDP needs no find_unused_parameters on any trunk
    (heatmaps.sum() + classes.sum()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    deconvs = len(model.head.deconv) // 3
    assert deconvs == {32: 3, 4: 0}[model.backbone.stride]
    ordinal = build_model(backbone, 5, head_channels=16, head="ordinal_xy", input_size=(64, 96),
                          bins=(128, 192))
    x, y = ordinal(torch.zeros(2, 3, 96, 64))
    assert x.shape == (2, 5, 128) and y.shape == (2, 5, 192)
    assert ordinal.head.x.in_features == 16 * 24  # the stride-4 map, whatever the trunk's stride


def test_hrnet_goes_straight_to_the_heatmap_layer():
    model = build_model("hrnet_w18_small", 5)
    assert len(model.head.deconv) == 0 and model.head.final.in_channels == 18  # W18's high-res width
    assert model.backbone.stride == 4 and model.backbone.out_channels == 18


def test_config_knows_the_same_backbones():
    from kpdet.config import BACKBONES as CONFIG_BACKBONES
    from kpdet.config import ConfigError, load_config

    assert set(CONFIG_BACKBONES) == set(BACKBONES)
    cfg = load_config("configs/smoke.yaml", ["model.backbone=timm/resnet10t"])
    assert cfg.model.backbone == "timm/resnet10t"
    with pytest.raises(ConfigError, match="'hrnet_w33' is not one of .*hrnet_w32.* or timm/<name>"):
        load_config("configs/smoke.yaml", ["model.backbone=hrnet_w33"])


@needs_timm
def test_unknown_timm_model_names_close_ones():
    with pytest.raises(ValueError, match=r"timm has no model 'resnet181'; close names: .*resnet18"):
        build_backbone("timm/resnet181")


@needs_timm
def test_timm_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError
    with pytest.raises(ImportError, match=r"pip install kpdet\[timm\]"):
        build_backbone("timm/resnet10t")


@needs_timm
def test_timm_trunk_loads_local_timm_and_torchvision_files(tmp_path):
    import timm

    reference = timm.create_model("resnet10t")
    torch.save(reference.state_dict(), tmp_path / "timm.pth")
    trunk = build_backbone("timm/resnet10t", str(tmp_path / "timm.pth"))
    assert torch.equal(trunk.body.conv1[0].weight, reference.conv1[0].weight)
    # a torchvision checkpoint (same names as timm's ResNet), wrapped as training scripts save it
    tv = torchvision.models.resnet18(weights=None)
    torch.save({"state_dict": tv.state_dict()}, tmp_path / "tv.pth")
    assert torch.equal(build_backbone("timm/resnet18", str(tmp_path / "tv.pth")).body.conv1.weight,
                       tv.conv1.weight)
    with pytest.raises(RuntimeError, match="timm/resnet10t.*size mismatch"):
        build_backbone("timm/resnet10t", str(tmp_path / "tv.pth"))
    with pytest.raises(FileNotFoundError, match="model.pretrained='/nope.pth': no such file"):
        build_backbone("timm/resnet10t", "/nope.pth")


@needs_timm
def test_timm_hub_offline_says_how_to_pass_a_file(monkeypatch):
    import timm

    def offline(*args, pretrained=False, **kwargs):
        raise OSError("cannot reach huggingface.co")  # what huggingface_hub raises offline

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeError, match=r"Offline\?.*pass model.pretrained=/path/to/model.safetensors"):
        build_backbone("timm/resnet10t", "hub")
    with pytest.raises(ValueError, match="for timm/resnet10t use 'hub'"):
        build_backbone("timm/resnet10t", "imagenet")


def test_hrnet_loads_a_checkpoint_by_name(tmp_path):
    torch.manual_seed(0)
    source = HRNetBackbone("hrnet_w18_small_v1")
    # MMPose-style: trunk under "backbone.", plus a head the trunk does not have
    state = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    state["final_layer.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "pose.pth")
    trunk = build_backbone("hrnet_w18_small_v1", str(tmp_path / "pose.pth"))
    assert all(torch.equal(a, b) for a, b in zip(trunk.state_dict().values(), source.state_dict().values()))
    with pytest.raises(ValueError, match="does not fit hrnet_w18_small:"):
        build_backbone("hrnet_w18_small", str(tmp_path / "pose.pth"))
    with pytest.raises(ValueError, match="no downloadable weights for hrnet_w18_small"):
        build_backbone("hrnet_w18_small", "imagenet")
