"""The ordinal_xy head through the engine: config checks, target forms, learning, flip testing,
loader-side targets, and the tools (train, test, infer) unchanged."""
import json

import pytest
import torch
from torch.utils.data import default_collate

from kpdet.codecs import build_codec
from kpdet.config import load_config
from kpdet.data import TopDownDataset
from kpdet.data.targets import WithHeatmapTargets
from kpdet.engine import builders
from kpdet.engine.train import encode_targets
from kpdet.losses import build_loss
from kpdet.losses.ordinal import XYLoss
from kpdet.models import build_model
from kpdet.predict import HeatmapPredictor, OrdinalPredictor, make_predictor
from tests.conftest import data_overrides, run_tool

ORDINAL = ["model.head=ordinal_xy", "codec.type=ordinal_xy", "loss.type=squared_emd"]
SIZE = (64, 64)


def smoke(*overrides):
    return load_config("configs/smoke.yaml", list(overrides))


def test_heatmap_loss_with_ordinal_head_is_refused_naming_both():
    cfg = smoke("model.head=ordinal_xy", "codec.type=ordinal_xy")  # smoke's loss: distance_aware_focal
    with pytest.raises(ValueError, match=r"loss.type='distance_aware_focal' takes heatmap targets, but "
                                         r"model.head='ordinal_xy' trains with ordinal targets; use one of: "
                                         r"bin_ce, bin_kl, squared_emd"):
        builders.build_loss_from_cfg(cfg)


def test_ordinal_loss_with_heatmap_head_is_refused_naming_both():
    with pytest.raises(ValueError, match="loss.type='emd2' takes ordinal targets, but model.head='heatmap'"):
        builders.build_loss_from_cfg(smoke("loss.type=emd2"))


def test_codec_and_head_must_agree():
    with pytest.raises(ValueError, match="codec.type='msra' makes heatmap targets, but "
                                         "model.head='ordinal_xy'.*use one of: ordinal_xy"):
        builders.build_codec_from_cfg(smoke("model.head=ordinal_xy", "loss.type=squared_emd"))
    with pytest.raises(ValueError, match="codec.type='ordinal_xy' makes ordinal targets, but model.head="):
        builders.build_codec_from_cfg(smoke("codec.type=ordinal_xy"))
    with pytest.raises(ValueError, match="model.head='simcc': unknown head 'simcc'; known: heatmap, "):
        builders.build_codec_from_cfg(smoke("model.head=simcc"))


@pytest.mark.parametrize("loss, target", [("squared_emd", "index"), ("bin_ce", "index"),
                                          ("bin_kl", "gaussian")])
def test_the_loss_picks_the_target_form(loss, target):
    cfg = smoke("model.head=ordinal_xy", "codec.type=ordinal_xy", f"loss.type={loss}")
    assert builders.build_codec_from_cfg(cfg).target == target
    assert isinstance(builders.build_loss_from_cfg(cfg), XYLoss)
    # an explicit codec.target wins: squared EMD against Gaussian labels
    cfg = smoke(*ORDINAL, "codec.target=gaussian")
    assert builders.build_codec_from_cfg(cfg).target == "gaussian"


def test_builders_size_the_head_from_the_codec():
    cfg = smoke(*ORDINAL, "codec.split=3")
    model = builders.build_model_from_cfg(cfg, 4, "softmax")
    x, y = model(torch.zeros(1, 3, 64, 64))
    assert x.shape == y.shape == (1, 4, 192)  # 64 px * 3 bins
    predictor = make_predictor(model, builders.build_codec_from_cfg(cfg), "softmax")
    assert isinstance(predictor, OrdinalPredictor)
    assert isinstance(make_predictor(model, build_codec("msra"), "sigmoid"), HeatmapPredictor)


@pytest.fixture(scope="module")
def crops(tiny_synthetic):
    dataset = TopDownDataset(tiny_synthetic / "train.json", tiny_synthetic / "images", SIZE, train=False)
    samples = [dataset[i] for i in range(8)]
    return {k: torch.stack([s[k] for s in samples]) for k in ("image", "keypoints", "visible")}


def pck(keypoints, crops, threshold=0.1 * 64):
    """Share of visible keypoints within 0.1 x the crop side (crop px)."""
    close = (keypoints - crops["keypoints"]).norm(dim=-1) <= threshold
    return (close & (crops["visible"] > 0)).sum().item() / (crops["visible"] > 0).sum().item()




@pytest.mark.parametrize("name", ["squared_emd", "bin_ce", "bin_kl"])
def test_a_short_run_learns(name, crops, one_torch_thread):
    """30 steps on 8 fixed crops: the loss falls by a fifth and PCK@0.1 rises well above its untrained
    value (0.08; after: 0.53 squared_emd, 0.87 bin_ce, 0.56 bin_kl)."""
    torch.manual_seed(0)
    loss_fn = XYLoss(build_loss(name))
    target = "gaussian" if loss_fn.target_form == "distribution" else "index"
    codec = build_codec({"type": "ordinal_xy", "split": 2, "sigma": 2.0, "target": target}, input_size=SIZE)
    model = build_model("resnet18", 17, head_channels=32, num_deconv=1, head="ordinal_xy", input_size=SIZE,
                        bins=codec.num_bins)
    predictor = OrdinalPredictor(model, codec)
    targets, weights = codec.encode(crops["keypoints"], crops["visible"])
    model.eval()
    before = pck(predictor(crops["image"])[0], crops)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        model.train()
        loss = loss_fn(model(crops["image"]), targets, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    after = pck(predictor(crops["image"])[0], crops)
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5]), losses
    assert after > before + 0.25, (before, after)


class MirrorAwareModel(torch.nn.Module):
    """Outputs the log Gaussian labels of fixed keypoints, or, for a mirrored image (marked by a
    negative top-left pixel after the flip), those of the mirrored keypoints with left/right swapped:
    what a perfect model does."""

    def __init__(self, codec, keypoints, flip_index, width):
        super().__init__()
        mirrored = keypoints[:, flip_index].clone()
        mirrored[..., 0] = width - 1 - mirrored[..., 0]
        ones = torch.ones(keypoints.shape[:2])
        self.plain = [t.clamp_min(1e-12).log() for t in codec.encode(keypoints, ones)[0]]
        self.flipped = [t.clamp_min(1e-12).log() for t in codec.encode(mirrored, ones)[0]]

    def forward(self, images):
        return tuple(self.flipped if images[0, 0, 0, 0] < 0 else self.plain)


def test_flip_test_maps_the_mirrored_prediction_back():
    codec = build_codec({"type": "ordinal_xy", "sigma": 2.0, "target": "gaussian"}, input_size=(32, 32))
    keypoints = torch.tensor([[[5.3, 10.0], [25.8, 11.0], [16.2, 20.4]]])  # left eye, right eye, nose
    flip_index = [1, 0, 2]
    model = MirrorAwareModel(codec, keypoints, flip_index, 32)
    images = torch.ones(1, 3, 32, 32)
    images[..., -1] = -1.0  # after images.flip(-1) the top-left pixel is negative
    plain, _, _ = OrdinalPredictor(model, codec)(images)
    flipped, confidences, (px, _) = OrdinalPredictor(model, codec, flip_index)(images)
    torch.testing.assert_close(plain, keypoints, atol=3e-4, rtol=0)
    torch.testing.assert_close(flipped, keypoints, atol=3e-4, rtol=0)
    torch.testing.assert_close(px.sum(-1), torch.ones(1, 3))
    # without the left/right swap the eyes trade places: off by ~20 px
    wrong, _, _ = OrdinalPredictor(model, codec, [0, 1, 2])(images)
    assert (wrong - keypoints)[0, :2, 0].abs().min().item() > 5


def test_loader_targets_equal_step_targets(tiny_synthetic):
    codec = build_codec({"type": "ordinal_xy", "sigma": 1.5}, input_size=SIZE)
    dataset = TopDownDataset(tiny_synthetic / "train.json", tiny_synthetic / "images", SIZE, train=False)
    batch = default_collate([dataset[i] for i in range(4)])
    in_loader = default_collate([WithHeatmapTargets(dataset, codec)[i] for i in range(4)])
    from_loader = encode_targets(codec, in_loader, torch.device("cpu"))
    on_device = encode_targets(codec, batch, torch.device("cpu"))
    for a, b in zip(from_loader[0], on_device[0]):
        torch.testing.assert_close(a, b)
    assert torch.equal(from_loader[1], on_device[1])


@pytest.fixture(scope="module")
def ordinal_run(tiny_synthetic, tmp_path_factory):
    work = tmp_path_factory.mktemp("ordinal")
    run_tool("tools/train.py", "configs/synthetic/emd_ordinal.yaml", f"work_dir={work}", "train.epochs=1",
             "train.max_iters_per_epoch=2", "train.batch_size=8", "data.num_workers=0", "eval.flip_test=true",
             "eval.vis_images=2", "model.head_channels=32", *data_overrides(tiny_synthetic))
    return work


def test_emd_ordinal_config_trains_and_tests_through_the_tools(ordinal_run, tmp_path):
    metrics = json.loads((ordinal_run / "metrics.json").read_text())
    assert {"AP", "PCK@0.05", "PCK@0.1", "PCK@0.2", "EPE"} <= set(metrics)
    assert 0.0 <= metrics["PCK@0.05"] <= metrics["PCK@0.1"] <= metrics["PCK@0.2"] <= 1.0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(ordinal_run / "tb")).Reload()
    assert {"val/predictions", "val/distributions"} <= set(events.Tags()["images"])
    out_file = tmp_path / "m.json"
    run_tool("tools/test.py", str(ordinal_run / "config.yaml"), str(ordinal_run / "last.pt"), "--out",
             str(out_file))
    assert json.loads(out_file.read_text()) == pytest.approx(metrics)


def test_infer_tool_with_the_ordinal_head(ordinal_run, tiny_synthetic, tmp_path):
    image = sorted((tiny_synthetic / "images" / "val").iterdir())[0]
    run_tool("tools/infer.py", str(ordinal_run / "config.yaml"), str(ordinal_run / "best.pt"), str(image),
             "--out", str(tmp_path / "out"))
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    keypoints = torch.tensor(predictions[0]["keypoints"])  # [1, 17, 3]: x, y, confidence
    assert keypoints.shape == (1, 17, 3) and ((keypoints[..., 2] >= 0) & (keypoints[..., 2] <= 1)).all()


@pytest.mark.parametrize("ordinal, heatmap", [
    ("configs/synthetic/emd_ordinal.yaml", "configs/synthetic/focal.yaml"),
    ("configs/openfield/emd_ordinal.yaml", "configs/openfield/mse.yaml"),
])
def test_ordinal_configs_match_their_heatmap_counterparts(ordinal, heatmap):
    """Same data and budget: only the head, codec, loss and work_dir differ; emd and ce only in loss."""
    a, b = load_config(ordinal), load_config(heatmap)
    assert a.model.head == "ordinal_xy" and a.loss.type == "squared_emd" and a.codec.type == "ordinal_xy"
    b.model.head, b.codec, b.loss, b.work_dir = a.model.head, a.codec, a.loss, a.work_dir
    assert a == b
    if "synthetic" in ordinal:
        ce = load_config("configs/synthetic/ce_ordinal.yaml")
        assert ce.loss.type == "bin_ce"
        ce.loss, ce.work_dir = a.loss, a.work_dir
        assert ce == a


def test_onnx_export_of_the_ordinal_head_gives_the_same_keypoints(tmp_path, one_torch_thread):
    from kpdet.export import OnnxModel, export_onnx, largest_difference

    codec = build_codec({"type": "ordinal_xy", "split": 2}, input_size=SIZE)
    torch.manual_seed(0)
    model = build_model("resnet18", 3, head_channels=16, num_deconv=1, head="ordinal_xy", input_size=SIZE,
                        bins=codec.num_bins).eval()
    onnx_model = OnnxModel(export_onnx(model, tmp_path / "m.onnx", SIZE))
    crops = torch.randn(2, 3, 64, 64)
    assert largest_difference(model, onnx_model, crops) < 1e-4
    ours, theirs = OrdinalPredictor(model, codec, [1, 0, 2]), OrdinalPredictor(onnx_model, codec, [1, 0, 2])
    torch.testing.assert_close(ours(crops)[0], theirs(crops)[0], atol=1e-3, rtol=0)
