"""The speed keys from config to a finished run: data.cache=ram and data.augment_on=device."""
import pytest
import torch

from kpdet.config import ConfigError, load_config
from kpdet.engine import builders, runner
from tests.conftest import data_overrides

SHORT = ["train.epochs=2", "train.max_iters_per_epoch=2", "eval.vis_images=0"]


def test_cache_and_device_augmentation_train_end_to_end(tiny_synthetic, tmp_path):
    cfg = load_config("configs/smoke.yaml", [*data_overrides(tiny_synthetic), f"work_dir={tmp_path}", *SHORT,
                                             "data.cache=ram", "data.augment_on=device",
                                             "data.aug.photometric=true"])
    c = runner.build_components(cfg)
    assert c.train_set.image_cache is not None and c.val_set.image_cache is not None
    batch = next(iter(c.train_loader))
    assert batch["image"].dtype == torch.uint8 and "canvas_to_crop" in batch  # the canvas
    metrics = runner.fit(cfg)
    assert (tmp_path / "metrics.json").exists() and metrics["PCK@0.2"] == metrics["PCK@0.2"]


def test_device_augmentation_needs_device_targets(tiny_synthetic):
    cfg = load_config("configs/smoke.yaml", [*data_overrides(tiny_synthetic), "data.augment_on=device",
                                             "train.device_targets=false"])
    with pytest.raises(ValueError, match="augment_on=device needs train.device_targets"):
        builders.device_targets(cfg, torch.device("cpu"))


@pytest.mark.parametrize("key", ["data.cache=disk", "data.augment_on=gpu"])
def test_unknown_values_are_config_errors(key):
    with pytest.raises(ConfigError, match=key.split("=")[0]):
        load_config("configs/smoke.yaml", [key])


def test_loader_workers_of_a_cached_dataset_are_forked(tiny_synthetic):
    cfg = load_config("configs/smoke.yaml", [*data_overrides(tiny_synthetic), "data.cache=ram"])
    cached = builders.build_split(cfg, "train", train=True)
    loader = builders.build_loader(cached, 4, 1, True, 0)
    assert loader.multiprocessing_context.get_start_method() == "fork"  # the buffer is shared, not pickled
    assert builders.build_loader(cached, 4, 0, True, 0).multiprocessing_context is None
    plain_cfg = load_config("configs/smoke.yaml", data_overrides(tiny_synthetic))
    plain = builders.build_split(plain_cfg, "train", train=True)
    assert builders.build_loader(plain, 4, 1, True, 0).multiprocessing_context is None
    batch = next(iter(loader))  # a forked worker reads the parent's buffer
    assert batch["image"].shape[0] == 4


def test_whole_image_pipelines_refuse_the_top_down_speed_keys(tiny_synthetic):
    cfg = load_config("configs/smoke.yaml", [*data_overrides(tiny_synthetic), "data.mode=bottom_up",
                                             "data.cache=ram"])
    with pytest.raises(ConfigError, match="data.mode=top_down only"):
        builders.build_split(cfg, "train", train=True)
