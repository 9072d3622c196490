"""The final-bias prior that `model.final_bias: null` gives each loss (docs/focal.md)."""
import math

import pytest

from kpdet.build import build_model_from_cfg, prior_bias
from kpdet.config import load_config
from kpdet.losses import build_loss


def test_prior_bias_is_the_logit_of_the_prior():
    # -log((1 - p) / p): p = 0.1 -> -log 9 = -2.1972, p = 0.01 -> -log 99 = -4.5951, p = 0.5 -> 0
    assert prior_bias(0.1) == pytest.approx(-2.1972, abs=1e-4)
    assert prior_bias(0.01) == pytest.approx(-4.5951, abs=1e-4)
    assert prior_bias(0.5) == pytest.approx(0.0)


@pytest.mark.parametrize("loss, overrides, bias", [
    ("distance_aware_focal", [], -math.log(9)),  # CenterNet's p = 0.1 (docs/focal.md: why not 0.01)
    ("quality_focal", [], -math.log(9)),
    ("focal", [], -math.log(9)),
    ("mse", [], 0.0),  # linear output
    ("distance_aware_focal", ["model.final_bias=-4.6"], -4.6),  # an explicit value wins
])
def test_null_final_bias_takes_the_loss_prior(loss, overrides, bias):
    cfg = load_config("configs/smoke.yaml", [f"loss.type={loss}", "model.head_channels=8", *overrides])
    activation = build_loss(loss).activation
    model = build_model_from_cfg(cfg, 3, activation, pretrained=False)
    assert model.head.final.bias.tolist() == pytest.approx([bias] * 3, abs=1e-6)
