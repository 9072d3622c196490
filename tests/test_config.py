import pytest

from kpdet.config import ConfigError, load_config

FOCAL = "configs/synthetic/focal.yaml"


def test_overrides_are_typed_and_applied():
    cfg = load_config(FOCAL, ["train.epochs=5", "train.lr=1e-4", "data.flip_pairs=[[1,2]]", "resume=auto"])
    assert cfg.train.epochs == 5 and cfg.train.lr == pytest.approx(1e-4)
    assert cfg.data.flip_pairs == [[1, 2]] and cfg.resume == "auto"


def test_focal_and_mse_configs_differ_only_in_loss_and_work_dir():
    focal, mse = load_config(FOCAL), load_config("configs/synthetic/mse.yaml")
    assert focal.loss.type == "distance_aware_focal" and mse.loss.type == "mse"
    focal.loss, focal.work_dir = mse.loss, mse.work_dir
    assert focal == mse


def test_new_loss_type_drops_the_old_loss_parameters():
    assert dict(load_config(FOCAL, ["loss.type=mse"]).loss) == {"type": "mse"}
    assert load_config(FOCAL, ["loss.alpha=3"]).loss.beta == 4


@pytest.mark.parametrize("override, message", [
    ("train.epochz=3", "key 'train.epochz'"),
    ("train.epochs=abc", "key 'train.epochs'"),
    ("device=gpu", "device='gpu' is not one of auto, cpu, cuda"),
    ("model.input_size=[1,2,3]", "model.input_size must be [W, H]"),
    ("trainepochs", "not of the form key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(FOCAL, [override])


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr_max: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: key 'train.lr_max'"):
        load_config(bad)


@pytest.mark.parametrize("dataset", ["synthetic", "openfield"])
def test_hrnet_configs_are_the_mse_configs_but_for_the_backbone(dataset):
    hrnet, mse = (load_config(f"configs/{dataset}/{name}.yaml") for name in ("hrnet_w18_small_mse", "mse"))
    assert (hrnet.model.backbone, mse.model.backbone) == ("hrnet_w18_small", "resnet18")
    hrnet.model.backbone, hrnet.work_dir = mse.model.backbone, mse.work_dir
    assert hrnet == mse


@pytest.mark.parametrize("focal_path, mse_path", [
    ("configs/points/focal.yaml", "configs/points/mse.yaml"),
    ("configs/bottom_up/synthetic_focal.yaml", "configs/bottom_up/synthetic_mse.yaml"),
    ("configs/openfield/focal_whole_frame.yaml", "configs/openfield/mse_whole_frame.yaml")])
def test_bottom_up_twins_differ_in_the_loss_and_the_l1_weights_scaled_to_it(focal_path, mse_path):
    # focal is normalised per positive (L1 weight 1, CenterNet's); MSE is a per-pixel mean, ~100x
    # smaller, and at weight 1 its heatmaps did not train (README "Offset head"): 0.002, MMPose DEKR's
    focal, mse = load_config(focal_path), load_config(mse_path)
    assert (focal.model.offset_weight, mse.model.offset_weight) == (1.0, 0.002)
    if focal.data.bottom_up.task == "pose":
        weights = focal.data.bottom_up.displacement_weight, mse.data.bottom_up.displacement_weight
        assert weights == (1.0, 0.002)
        focal.data.bottom_up.displacement_weight = mse.data.bottom_up.displacement_weight
    focal.loss, focal.work_dir, focal.model.offset_weight = mse.loss, mse.work_dir, mse.model.offset_weight
    assert focal == mse
