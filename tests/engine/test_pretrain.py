"""Pretraining on the synthetic set: the cached trunk file, its reuse, and `model.pretrained: synthetic`."""
import json

import pytest
import torch

from kpdet.config import ConfigError, load_config
from kpdet.engine.pretrain import (
    DEFAULT_EPOCHS,
    DEFAULT_IMAGES,
    pretrain,
    resolve_pretrained,
    synthetic_budget,
    synthetic_trunk,
    trunk_file,
)
from kpdet.models import build_model
from kpdet.models.backbones import build_backbone

TINY = ("train.max_iters_per_epoch=2", "train.batch_size=4", "model.input_size=[64,64]",
        "model.head_channels=32", "data.num_workers=0", "data.synthetic.num_train=8",
        "data.synthetic.num_val=4", "device=cpu", "eval.batch_size=8", "eval.vis_images=0")


def test_synthetic_budget_is_parsed_from_the_name():
    assert synthetic_budget("synthetic") == (DEFAULT_EPOCHS, DEFAULT_IMAGES)
    assert synthetic_budget("synthetic:5") == (5, DEFAULT_IMAGES)
    assert synthetic_budget("synthetic:1:10000") == (1, 10000)
    assert synthetic_budget("imagenet") is None and synthetic_budget(None) is None
    assert synthetic_budget("/data/synthetic.pt") is None  # a file path, not the keyword
    for wrong in ("synthetic:five", "synthetic:0", "synthetic:1:2:3", "synthetic:1:"):
        with pytest.raises(ConfigError, match="synthetic:1:10000"):
            synthetic_budget(wrong)
    assert load_config("synthetic/focal").data.synthetic.num_train == DEFAULT_IMAGES  # the shipped set


def test_trunk_files_name_their_budget(tmp_path):
    assert trunk_file(tmp_path, "resnet18", 5).name == "synthetic-focal_resnet18_e5_s0.pt"  # as cached before
    larger = trunk_file(tmp_path, "resnet18", 1, images=10000)
    assert larger.name == "synthetic-focal_resnet18_e1_n10000_s0.pt"
    cfg = load_config("smoke", ["model.pretrained=synthetic:1:10000", f"model.pretrained_cache={tmp_path}"])
    assert synthetic_trunk(cfg) == larger


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    pretrain("resnet18", 1, cache, overrides=TINY)
    return cache


def test_pretrain_writes_the_trained_trunk_once(cache, capsys):
    path = trunk_file(cache, "resnet18", 1)
    saved = torch.load(path, weights_only=True)
    assert saved["backbone"] == "resnet18" and saved["pretrain"]["steps"] == 2
    run = torch.load(path.with_suffix(".run") / "last.pt", weights_only=True)["model"]
    assert saved["trunk"].keys() == build_model("resnet18", 17).backbone.state_dict().keys()
    assert all(torch.equal(saved["trunk"][k], run[f"backbone.{k}"]) for k in saved["trunk"])
    stamp = path.stat().st_mtime_ns
    assert pretrain("resnet18", 1, cache, overrides=TINY) == path and path.stat().st_mtime_ns == stamp
    assert "pretraining" not in capsys.readouterr().out  # reused, not trained again
    assert saved["pretrain"]["images"] == 8  # TINY's override wins over the default images


def test_a_larger_synthetic_set_is_generated_for_its_own_trunk(cache):
    tiny = tuple(o for o in TINY if not o.startswith("data.synthetic.num_train"))
    path = pretrain("resnet18", 1, cache, overrides=tiny, images=12)
    assert path == trunk_file(cache, "resnet18", 1, images=12)
    assert torch.load(path, weights_only=True)["pretrain"]["images"] == 12
    assert len(json.loads((cache / "synthetic_n12" / "train.json").read_text())["images"]) == 12
    assert len(json.loads((cache / "synthetic" / "train.json").read_text())["images"]) == 8  # left as it was


def test_model_pretrained_synthetic_resolves_to_the_cached_trunk(cache):
    cfg = load_config("smoke", ["model.pretrained=synthetic:1", f"model.pretrained_cache={cache}"])
    assert resolve_pretrained(cfg).model.pretrained == str(trunk_file(cache, "resnet18", 1))
    assert cfg.model.pretrained == "synthetic:1"  # the caller's config is left as it was
    plain = load_config("configs/smoke.yaml", ["model.pretrained=null"])
    assert resolve_pretrained(plain) is plain


def test_a_trunk_file_or_a_kpdet_checkpoint_is_a_pretrained_backbone(cache):
    trunk = trunk_file(cache, "resnet18", 1)
    saved = torch.load(trunk, weights_only=True)["trunk"]
    checkpoint = trunk.with_suffix(".run") / "last.pt"  # a training checkpoint: its backbone.* tensors
    for source in (trunk, checkpoint):
        model = build_model("resnet18", 4, pretrained=str(source))
        assert all(torch.equal(v, saved[k]) for k, v in model.backbone.state_dict().items())
    with pytest.raises(ValueError, match="does not fit resnet34"):
        build_model("resnet34", 4, pretrained=str(trunk))


@pytest.mark.parametrize("backbone", ["hrnet_w18_small", "timm/resnet10t"])
def test_trunk_files_fit_every_backbone(backbone, tmp_path):
    if backbone.startswith("timm/"):
        pytest.importorskip("timm")
    torch.manual_seed(1)
    source = build_backbone(backbone)
    path = tmp_path / "trunk.pt"
    torch.save({"trunk": source.state_dict(), "backbone": backbone}, path)
    loaded = build_backbone(backbone, str(path))
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in loaded.state_dict().items())


@pytest.mark.parametrize("args, line", [([], "model.pretrained=synthetic\n"),
                                        (["--epochs", "5"], "model.pretrained=synthetic:5\n"),
                                        (["--images", "10000"], "model.pretrained=synthetic:5:10000\n")])
def test_pretrain_command_says_the_line_that_uses_its_trunk(args, line, tmp_path, monkeypatch, capsys):
    import kpdet.engine.pretrain as module
    from kpdet.cli import main

    calls = []
    monkeypatch.setattr(module, "pretrain", lambda *a: calls.append(a) or tmp_path / "trunk.pt")
    main(["pretrain", *args])
    epochs, images = calls[0][1], calls[0][-1]  # pretrain(backbone, epochs, cache, ..., images)
    assert (epochs, images) == synthetic_budget(line.strip().split("=")[1])
    assert capsys.readouterr().out.endswith(line)
