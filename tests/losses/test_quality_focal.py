"""quality_focal (QFL, Li et al. 2020): hand-computed cases, autograd of a plain reference,
the N_pos normaliser, weight-0 channels, |logit| = 100."""
import math

import pytest
import torch

from kpdet.codecs import build_codec
from kpdet.losses import _fused, build_loss


def qfl_plain(pred, target, weight=None, beta=2.0, n_pos=None):
    """The formula as written, with autograd: -|y - p|^beta ((1-y) log(1-p) + y log p) / N_pos,
    N_pos = max(1, sum of w over channels whose target is not all 0) unless given."""
    w = torch.ones(pred.shape[:2], dtype=pred.dtype) if weight is None else weight
    p = torch.sigmoid(pred)
    terms = -(target - p).abs() ** beta * ((1 - target) * torch.log(1 - p) + target * torch.log(p))
    if n_pos is None:
        n_pos = (w * (target.flatten(2).amax(2) > 0)).sum().clamp_min(1.0)
    return (terms * w[:, :, None, None]).sum() / n_pos


def test_qfl_hand_computed():
    pred = torch.tensor([[[[0.0, math.log(3.0)]]]], dtype=torch.float64)  # p = 0.5, 0.75
    target = torch.tensor([[[[1.0, 0.25]]]], dtype=torch.float64)
    # pixel 1: p 0.5, y 1:    |1 - 0.5|^2 = 0.25, -(log 0.5) = 0.6931472            -> 0.1732868
    # pixel 2: p 0.75, y 0.25: |0.25 - 0.75|^2 = 0.25,
    #          -(0.25 log 0.75 + 0.75 log 0.25) = 0.0719205 + 1.0397208 = 1.1116413 -> 0.2779103
    # N_pos = 1 (one channel with a target) -> L = 0.4511971
    assert build_loss("quality_focal")(pred, target).item() == pytest.approx(0.4511971, abs=1e-7)
    # p == y costs nothing, whatever the cross-entropy there: p = y = 0.5 -> |0|^2 * log 2 = 0
    half = torch.tensor([[[[0.0]]]], dtype=torch.float64)
    assert build_loss("qfl")(half, torch.full_like(half, 0.5)).item() == 0.0


def test_qfl_weights_and_n_pos_by_hand():
    pred = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]], dtype=torch.float64)  # [1, 2, 1, 2]
    target = torch.tensor([[[[1.0, 0.25]], [[0.5, 0.0]]]], dtype=torch.float64)
    weight = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    # channel 0: 0.4511971 (above), weight 1
    # channel 1: p 0.5 everywhere; y 0.5 -> 0; y 0 -> 0.25 * log 2 = 0.1732868; times w 0.5 = 0.0866434
    # N_pos = 1 + 0.5 (both channels have a target) -> L = (0.4511971 + 0.0866434) / 1.5 = 0.3585603
    assert build_loss("qfl")(pred, target, weight).item() == pytest.approx(0.3585603, abs=1e-7)
    # channel 1 all zero: not a keypoint, so N_pos = 1; its two negatives still count:
    # (0.4511971 + 0.5 * 2 * 0.1732868) / 1 = 0.6244839
    target[0, 1] = 0.0
    assert build_loss("qfl")(pred, target, weight).item() == pytest.approx(0.6244839, abs=1e-7)


@pytest.mark.parametrize("beta", [2.0, 0.0, 0.5, 1.0, 3.0])
def test_qfl_value_and_gradient_match_autograd_of_plain_formula(beta):
    torch.manual_seed(0)
    pred = (torch.randn(2, 3, 5, 6, dtype=torch.float64) * 3).requires_grad_()
    ys, xs = torch.meshgrid(torch.arange(5), torch.arange(6), indexing="ij")
    target = torch.exp(-((xs - 2.3) ** 2 + (ys - 1.7) ** 2) / 2.0).double().expand(2, 3, 5, 6).clone()
    target[1, 2] = 0.0  # a channel without a keypoint
    weight = torch.tensor([[1.0, 0.0, 0.5], [2.0, 1.0, 1.0]], dtype=torch.float64)
    loss = build_loss({"type": "quality_focal", "beta": beta})
    value = loss(pred, target, weight)
    expected = qfl_plain(pred, target, weight, beta)
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    torch.testing.assert_close(torch.autograd.grad(value, pred)[0], torch.autograd.grad(expected, pred)[0],
                               rtol=1e-10, atol=1e-14)


def test_qfl_chunks_give_the_same_value_and_gradient(monkeypatch):
    torch.manual_seed(2)
    pred = torch.randn(3, 4, 6, 7, dtype=torch.float64, requires_grad=True)
    target = torch.rand(3, 4, 6, 7, dtype=torch.float64)
    weight = torch.rand(3, 4, dtype=torch.float64)
    loss = build_loss("qfl")
    v1 = loss(pred, target, weight)
    (g1,) = torch.autograd.grad(v1, pred)
    monkeypatch.setattr(_fused, "CHUNK", 100)  # 100 // 42 = 2 rows per chunk: 6 chunks
    v2 = loss(pred, target, weight)
    (g2,) = torch.autograd.grad(v2, pred)
    torch.testing.assert_close(v1, v2, rtol=1e-14, atol=0)
    torch.testing.assert_close(g1, g2, rtol=1e-14, atol=0)
    torch.testing.assert_close(v2, qfl_plain(pred, target, weight), rtol=1e-12, atol=0)


def test_qfl_gradcheck_float64():
    torch.manual_seed(1)
    pred = (torch.randn(2, 2, 4, 5, dtype=torch.float64) * 2).requires_grad_()
    target = torch.rand(2, 2, 4, 5, dtype=torch.float64)
    weight = torch.tensor([[1.0, 0.3], [0.0, 2.0]], dtype=torch.float64)
    loss = build_loss({"type": "qfl", "beta": 2.5})
    assert torch.autograd.gradcheck(lambda x: loss(x, target, weight), (pred,))


def test_qfl_minimum_is_at_p_equal_y():
    y = torch.tensor([[[[0.1, 0.5, 0.9]]]], dtype=torch.float64)
    pred = torch.log(y / (1 - y)).requires_grad_()  # sigmoid(pred) == y
    value = build_loss("qfl")(pred, y)
    (g,) = torch.autograd.grad(value, pred)
    assert value.item() == pytest.approx(0.0, abs=1e-30) and g.abs().max().item() < 1e-15


def test_qfl_weight_zero_channel_has_no_effect():
    torch.manual_seed(3)
    pred = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.rand(2, 3, 4, 4)
    weight = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    loss = build_loss("qfl")
    value = loss(pred, target, weight)
    (g,) = torch.autograd.grad(value, pred)
    assert g[0, 1].abs().max() == 0
    pred2, target2 = pred.detach().clone(), target.clone()
    pred2[0, 1] += 5.0
    target2[0, 1] = 0.0  # also changes whether the channel has a target: still no effect on N_pos
    assert loss(pred2, target2, weight).item() == pytest.approx(value.item(), rel=1e-6)


@pytest.mark.parametrize("unbiased", [False, True])
def test_qfl_n_pos_is_the_number_of_visible_keypoints(unbiased):
    # msra puts one 1.0 per visible keypoint, so daf's N_pos (sum of w over y == 1) is 2 here and
    # QFL's (sum of w over channels with a target) is the same 2: the two losses share a scale.
    # DARK targets (unbiased, no one_positive) peak below 1: daf would find no positive, QFL still 2.
    codec = build_codec({"type": "msra", "sigma": 1.0, "unbiased": unbiased}, input_size=(32, 32),
                        heatmap_size=(8, 8))
    keypoints = torch.tensor([[[5.3, 4.6], [20.1, 12.7], [9.0, 28.0]]])
    target, weight = codec.encode(keypoints, torch.tensor([[1.0, 1.0, 0.0]]))
    daf_n_pos = (weight[:, :, None, None] * (target == 1)).sum().item()
    assert daf_n_pos == (0.0 if unbiased else 2.0)
    pred = torch.randn(target.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target, weight = target.double(), weight.double()
    unnormalised = qfl_plain(pred, target, weight, n_pos=1.0).item()
    assert build_loss("qfl")(pred, target, weight).item() == pytest.approx(unnormalised / 2, rel=1e-12)


def test_qfl_large_logits_float32_exact():
    pred = torch.tensor([[[[-100.0, 100.0, 100.0]]]], requires_grad=True)
    target = torch.tensor([[[[1.0, 0.0, 0.5]]]])
    value = build_loss("qfl")(pred, target)
    # y 1 at x -100: |1 - 0|^2 * -log p = logsigmoid(-100) -> 100
    # y 0 at x 100: |0 - 1|^2 * -log(1-p) = 100
    # y 0.5 at x 100: |0.5 - 1|^2 * -(0.5 log p + 0.5 log(1-p)) = 0.25 * (0 + 50) = 12.5
    # N_pos = 1 -> 212.5 (a clamped p = 1e-4 would give log terms of 9.2 instead of 100)
    assert value.item() == pytest.approx(212.5, rel=1e-6)
    (g,) = torch.autograd.grad(value, pred)
    # d/dx = |d|^2 (p - y) + 2 d p (1-p) ce, and p (1-p) = e^-100 ~ 0: (p - y)^3 = -1, 1, 0.125
    torch.testing.assert_close(g, torch.tensor([[[[-1.0, 1.0, 0.125]]]]))


def test_qfl_rejects_negative_beta():
    with pytest.raises(ValueError, match="beta must be >= 0"):
        build_loss({"type": "qfl", "beta": -1})


def test_qfl_reachable_from_config_overrides():
    from kpdet.config import load_config
    from kpdet.engine.builders import build_loss_from_cfg

    loss = build_loss_from_cfg(load_config("configs/smoke.yaml", ["loss.type=qfl", "loss.beta=1.5"]))
    assert type(loss).__name__ == "QualityFocalLoss" and loss.beta == 1.5 and loss.activation == "sigmoid"
