"""Every heatmap loss of the registry trains: its loss falls and PCK rises above the untrained
value on a few fixed synthetic crops. A newly registered loss is tested without anyone
remembering to add it here."""
import pytest
import torch

from kpdet.build import prior_bias
from kpdet.codecs import build_codec
from kpdet.data import TopDownDataset
from kpdet.losses import build_loss, list_losses
from kpdet.models import build_model
from kpdet.predict import HeatmapPredictor

HEATMAP_LOSSES = [n for n in list_losses() if build_loss(n).target_kind == "heatmap"]
SIZE = (64, 64)


@pytest.fixture(scope="module")
def crops(tiny_synthetic):
    dataset = TopDownDataset(tiny_synthetic / "train.json", tiny_synthetic / "images", SIZE, train=False)
    samples = [dataset[i] for i in range(16)]
    return {k: torch.stack([s[k] for s in samples]) for k in ("image", "keypoints", "visible")}


def pck(keypoints, crops, threshold=0.2 * 64):
    """Share of visible keypoints within 0.2 x the crop side (crop px)."""
    close = (keypoints - crops["keypoints"]).norm(dim=-1) <= threshold
    return (close & (crops["visible"] > 0)).sum().item() / (crops["visible"] > 0).sum().item()


def test_every_registered_loss_is_covered():
    assert {"distance_aware_focal", "mse", "ce", "dice"} <= set(HEATMAP_LOSSES)
    assert "squared_emd" not in HEATMAP_LOSSES  # an ordinal loss: no heatmap targets


@pytest.mark.parametrize("name", HEATMAP_LOSSES)
def test_loss_falls_and_pck_rises(name, crops):
    torch.manual_seed(0)
    loss_fn = build_loss(name)
    codec = build_codec({"type": "msra", "sigma": 1.0}, input_size=SIZE, heatmap_size=(16, 16),
                        one_positive=name == "distance_aware_focal")
    bias = prior_bias(loss_fn.prior) if loss_fn.activation == "sigmoid" else 0.0  # as build_model_from_cfg
    model = build_model("resnet18", 17, head_channels=32, final_bias=bias)
    predictor = HeatmapPredictor(model, codec, loss_fn.activation)
    targets, weights = codec.encode(crops["keypoints"], crops["visible"])
    weights = None if getattr(loss_fn, "mode", None) == "multiclass" else weights
    model.eval()
    before = pck(predictor(crops["image"])[0], crops)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        model.train()
        loss = loss_fn(model(crops["image"]), targets, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    after = pck(predictor(crops["image"])[0], crops)
    assert sum(losses[-5:]) < sum(losses[:5]), losses
    assert after > before + 0.2, (before, after)
