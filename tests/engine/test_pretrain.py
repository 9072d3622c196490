"""Pretraining on the synthetic set: the cached trunk file, its reuse, and `model.pretrained: synthetic`."""
import pytest
import torch

from kpdet.config import ConfigError, load_config
from kpdet.engine.pretrain import DEFAULT_EPOCHS, pretrain, resolve_pretrained, synthetic_epochs, trunk_file
from kpdet.models import build_model

TINY = ("train.max_iters_per_epoch=2", "train.batch_size=4", "model.input_size=[64,64]",
        "model.head_channels=32", "data.num_workers=0", "data.synthetic.num_train=8",
        "data.synthetic.num_val=4", "device=cpu", "eval.batch_size=8", "eval.vis_images=0")


def test_synthetic_budget_is_parsed_from_the_name():
    assert synthetic_epochs("synthetic") == DEFAULT_EPOCHS
    assert synthetic_epochs("synthetic:5") == 5
    assert synthetic_epochs("imagenet") is None and synthetic_epochs(None) is None
    assert synthetic_epochs("/data/synthetic.pt") is None  # a file path, not the keyword
    with pytest.raises(ConfigError, match="synthetic:5"):
        synthetic_epochs("synthetic:five")


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


def test_model_pretrained_synthetic_resolves_to_the_cached_trunk(cache):
    cfg = load_config("configs/smoke.yaml", ["model.pretrained=synthetic:1", f"model.pretrained_cache={cache}"])
    assert resolve_pretrained(cfg).model.pretrained == str(trunk_file(cache, "resnet18", 1))
    assert cfg.model.pretrained == "synthetic:1"  # the caller's config is left as it was
    plain = load_config("configs/smoke.yaml", ["model.pretrained=null"])
    assert resolve_pretrained(plain) is plain
