"""A short run must learn: PCK on the (training) crops rises well above its untrained value."""
import pytest

from kpdet.config import load_config
from kpdet.engine.runner import fit
from tests.conftest import data_overrides


def smoke_config(root, work, *extra):
    # Evaluate on the training images themselves (augmentation off): a pipeline that
    # learns anything at all must fit 24 images; a broken target/decoder/loss cannot.
    return load_config("configs/smoke.yaml", [
        *data_overrides(root, val_split="train"), f"work_dir={work}", "data.aug.flip_prob=0",
        "data.aug.rotation_prob=0", "data.aug.scale_factor=0", "eval.vis_images=0",
        "train.val_interval=1000", *extra])


@pytest.mark.parametrize("loss", ["distance_aware_focal", "mse"])
def test_pck_rises_well_above_untrained(loss, tiny_synthetic, tmp_path):
    untrained = fit(smoke_config(tiny_synthetic, tmp_path / "u", f"loss.type={loss}", "train.epochs=0"))
    trained = fit(smoke_config(tiny_synthetic, tmp_path / "t", f"loss.type={loss}", "train.epochs=12",
                               "train.lr=0.003"))
    assert untrained["PCK@0.2"] < 0.2
    assert trained["PCK@0.2"] > untrained["PCK@0.2"] + 0.3, (untrained, trained)
