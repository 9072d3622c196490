"""Every registered loss, automatically: heatmap-shaped inputs with weight [B, K], aliases,
weight-0 channels, half precision, |logit| = 100, and the build_loss error messages."""
import pytest
import torch

from kpdet.losses import LOSSES, build_loss, list_losses

ALL = list_losses()
ALIASES = {"daf": "distance_aware_focal", "qfl": "quality_focal", "fl": "focal", "dfl": "dual_focal",
           "gdl": "generalized_dice", "pel": "pointwise_exponential", "emd2": "squared_emd",
           "ordinal_ce": "bin_ce", "ordinal_kl": "bin_kl", "awing": "adaptive_wing"}


def heatmaps(B=2, K=3, H=8, W=6, seed=0, dtype=torch.float32):
    """Logits and Gaussian heatmap targets (peak exactly 1.0) like a codec's output, weight [B, K]."""
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(B, K, H, W, generator=g, dtype=dtype) * 2
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    cy, cx = torch.randint(0, H, (B, K, 1, 1), generator=g), torch.randint(0, W, (B, K, 1, 1), generator=g)
    target = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 2.0).to(dtype)
    weight = torch.ones(B, K, dtype=dtype)
    weight[0, 1] = 0.0
    return pred, target, weight


def weight_for(loss, weight):
    """Multiclass-only losses (wce) take no per-channel weight (CONTRACT.md)."""
    return None if getattr(loss, "mode", None) == "multiclass" else weight


def test_registry_contents():
    assert ALL == sorted(["distance_aware_focal", "quality_focal", "mse", "ce", "wce", "dce", "focal",
                          "dual_focal", "dice", "generalized_dice", "pointwise_exponential", "squared_emd",
                          "bin_ce", "bin_kl", "adaptive_wing", "ohkm_mse"])
    for alias, name in ALIASES.items():
        assert LOSSES.canonical(alias) == name


@pytest.mark.parametrize("name", ALL)
def test_heatmap_inputs_finite_scalar_and_gradient(name):
    loss = build_loss(name)
    assert loss.activation in ("sigmoid", "softmax", "identity")
    pred, target, weight = heatmaps()
    pred.requires_grad_()
    value = loss(pred, target, weight_for(loss, weight))
    assert value.shape == () and value.dtype == torch.float32 and torch.isfinite(value)
    (g,) = torch.autograd.grad(value, pred)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_alias_gives_same_value(alias):
    pred, target, weight = heatmaps(seed=1)
    expected = build_loss(ALIASES[alias])(pred, target, weight).item()
    assert build_loss(alias)(pred, target, weight).item() == expected


@pytest.mark.parametrize("name", [n for n in ALL if weight_for(build_loss(n), 1) is not None])
def test_weight_zero_channel_has_no_effect(name):
    loss = build_loss(name)
    pred, target, weight = heatmaps(seed=2)  # weight[0, 1] == 0
    pred.requires_grad_()
    value = loss(pred, target, weight)
    (g,) = torch.autograd.grad(value, pred)
    assert g[0, 1].abs().max() == 0
    pred2, target2 = pred.detach().clone(), target.clone()
    pred2[0, 1], target2[0, 1] = -pred2[0, 1] + 3.0, target2[0, 1].flip(-1) * 0.5
    assert loss(pred2, target2, weight).item() == pytest.approx(value.item(), rel=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_half_inputs_compute_in_float32(name):
    loss = build_loss(name)
    pred, target, weight = heatmaps(seed=3)
    w = weight_for(loss, weight)
    vh = loss(pred.bfloat16(), target.bfloat16(), None if w is None else w.bfloat16())
    v32 = loss(pred.bfloat16().float(), target.bfloat16().float(), w)
    assert vh.dtype == torch.float32 and vh.item() == pytest.approx(v32.item(), rel=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_logit_100_float32_finite_and_close_to_float64(name):
    loss = build_loss(name)
    pred, target, weight = heatmaps(seed=4, dtype=torch.float64)
    pred = torch.where(pred > 0, 100.0, -100.0).double()
    w = weight_for(loss, weight)
    vals, grads = [], []
    for dt in (torch.float32, torch.float64):
        x = pred.to(dt).requires_grad_()
        v = loss(x, target.to(dt), None if w is None else w.to(dt))
        vals.append(v.item())
        grads.append(torch.autograd.grad(v, x)[0].double())
    assert all(torch.isfinite(g).all() for g in grads)
    assert vals[0] == pytest.approx(vals[1], rel=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_build_errors_name_the_problem():
    with pytest.raises(KeyError, match="known:.*distance_aware_focal.*mse"):
        build_loss("nope")
    with pytest.raises(TypeError, match="'dce' has no parameter 'gama'"):
        build_loss({"type": "dce", "gama": 2})
    with pytest.raises(TypeError, match="'distance_aware_focal' has no parameter 'gamma'.*alpha, beta"):
        build_loss({"type": "daf", "gamma": 2})
    assert build_loss({"type": "daf", "alpha": 3}).alpha == 3.0


@pytest.mark.parametrize("name", ["distance_aware_focal", "focal", "dice", "squared_emd"])
def test_autocast_region_still_computes_in_float32(name):
    # Inside autocast (CPU bf16 here; CUDA fp16/bf16 alike) matmul-like ops inside the loss would
    # run in half precision; the loss switches autocast off and upcasts.
    loss = build_loss(name)
    pred, target, weight = heatmaps(seed=5)
    lin = torch.nn.Conv2d(3, 3, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lin(pred)
        assert out.dtype == torch.bfloat16
        value = loss(out, target, weight)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(loss(out.float(), target, weight).item(), rel=1e-6)
