"""distance_aware_focal and mse: hand-computed cases, loop references, gradcheck, |logit| = 100."""
import math

import pytest
import torch

from kpdet.losses import _fused, build_loss


def daf_loop(pred, target, weight=None, alpha=2.0, beta=4.0):
    """Slow CornerNet Eq. 1 with per-channel weights, written element by element in float64 math."""
    B, C, H, W = pred.shape
    total, n_pos = 0.0, 0.0
    for b in range(B):
        for c in range(C):
            w = 1.0 if weight is None else float(weight[b, c])
            for i in range(H):
                for j in range(W):
                    x, y = float(pred[b, c, i, j]), float(target[b, c, i, j])
                    log_p = -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))
                    log_1mp = log_p - x
                    p = math.exp(log_p)
                    if y == 1:
                        total += w * (1 - p) ** alpha * log_p
                        n_pos += w
                    else:
                        total += w * (1 - y) ** beta * p**alpha * log_1mp
    return -total / max(1.0, n_pos)


def gauss_target(B, C, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    cy = torch.randint(0, H, (B, C, 1, 1), generator=g)
    cx = torch.randint(0, W, (B, C, 1, 1), generator=g)
    return torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 1.5**2)).double()


def test_daf_hand_computed():
    pred = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    target = torch.tensor([[[[1.0, 0.5]]]], dtype=torch.float64)
    # p = 0.5 everywhere. positive: (1-0.5)^2 log 0.5 = 0.25 * -0.6931472 = -0.1732868
    # negative y=0.5: (1-0.5)^4 * 0.5^2 * log 0.5 = 0.0625 * 0.25 * -0.6931472 = -0.0108304
    # N_pos = 1 -> L = 0.1732868 + 0.0108304 = 0.1841172
    assert build_loss("daf")(pred, target).item() == pytest.approx(0.1841172, abs=1e-7)


def test_daf_no_positive_divides_by_one():
    pred = torch.tensor([[[[2.0]]]], dtype=torch.float64)
    target = torch.zeros(1, 1, 1, 1, dtype=torch.float64)
    # p = sigmoid(2) = 0.8807971; term = 1 * p^2 * log(1-p) = 0.7758034 * log(0.1192029)
    #   = 0.7758034 * -2.1269280 = -1.6500782
    # N_pos = max(1, 0) = 1 -> L = 1.6500782
    assert build_loss("distance_aware_focal")(pred, target).item() == pytest.approx(1.6500782, abs=1e-6)


@pytest.mark.parametrize("params", [{}, {"alpha": 1.5, "beta": 3.0}, {"alpha": 3.0, "beta": 0.0}])
def test_daf_matches_loop_with_weights(params):
    torch.manual_seed(0)
    pred = torch.randn(2, 3, 5, 6, dtype=torch.float64) * 3
    target = gauss_target(2, 3, 5, 6)
    weight = torch.tensor([[1.0, 0.0, 0.5], [2.0, 1.0, 0.0]], dtype=torch.float64)
    loss = build_loss({"type": "daf", **params})
    expected = daf_loop(pred, target, weight, alpha=params.get("alpha", 2.0), beta=params.get("beta", 4.0))
    assert loss(pred, target, weight).item() == pytest.approx(expected, rel=1e-10)


def test_daf_gradcheck_float64():
    torch.manual_seed(1)
    pred = (torch.randn(2, 2, 4, 5, dtype=torch.float64) * 2).requires_grad_()
    target = gauss_target(2, 2, 4, 5, seed=1)
    weight = torch.tensor([[1.0, 0.3], [0.0, 2.0]], dtype=torch.float64)
    loss = build_loss({"type": "daf", "alpha": 2.5, "beta": 4.0})
    assert torch.autograd.gradcheck(lambda x: loss(x, target, weight), (pred,))


def test_daf_chunking_does_not_change_result(monkeypatch):
    torch.manual_seed(2)
    pred = torch.randn(3, 4, 6, 7, dtype=torch.float64, requires_grad=True)
    target = gauss_target(3, 4, 6, 7, seed=2)
    loss = build_loss("daf")
    v1 = loss(pred, target)
    (g1,) = torch.autograd.grad(v1, pred)
    monkeypatch.setattr(_fused, "CHUNK", 50)  # 50 // 42 = 1 row per chunk: 12 chunks
    v2 = loss(pred, target)
    (g2,) = torch.autograd.grad(v2, pred)
    assert torch.allclose(v1, v2, rtol=1e-14) and torch.allclose(g1, g2, rtol=1e-14)


def test_daf_large_logits_float32_exact():
    # one positive at logit -100, one negative (y=0) at logit +100 and one at -100.
    pred = torch.tensor([[[[-100.0, 100.0, -100.0]]]], requires_grad=True)
    target = torch.tensor([[[[1.0, 0.0, 0.0]]]])
    loss = build_loss("daf")(pred, target)
    # positive: (1-p)^2 log p = 1 * logsigmoid(-100) = -100 (CenterNet's clamp would give log 1e-4 = -9.21)
    # negative at +100: p^2 log(1-p) = 1 * logsigmoid(-100) = -100 ; at -100: ~e^-200 * -e^-100 = 0
    # L = -(-100 - 100) / 1 = 200
    assert loss.item() == pytest.approx(200.0, rel=1e-6)
    (g,) = torch.autograd.grad(loss, pred)
    # d/dx of -(log p) at x=-100: -(1-p) = -1 ; of -(p^2 log(1-p)) at x=100: -(2 p (1-p) p log(1-p) - p^3) = 1
    assert torch.allclose(g, torch.tensor([[[[-1.0, 1.0, 0.0]]]]), atol=1e-6)


def test_daf_weight_zero_channel_has_no_effect():
    torch.manual_seed(3)
    pred = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = gauss_target(2, 3, 4, 4).float()
    weight = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    loss = build_loss("daf")
    v = loss(pred, target, weight)
    pred2 = pred.detach().clone()
    pred2[0, 1] += 5.0
    target2 = target.clone()
    target2[0, 1] = 0.3
    assert loss(pred2, target2, weight).item() == pytest.approx(v.item(), rel=1e-6)
    (g,) = torch.autograd.grad(v, pred)
    assert g[0, 1].abs().max() == 0


def test_daf_half_input_computes_in_float32():
    torch.manual_seed(4)
    pred = torch.randn(1, 2, 8, 8) * 4
    target = gauss_target(1, 2, 8, 8).float()
    loss = build_loss("daf")
    v16 = loss(pred.bfloat16(), target.bfloat16())
    assert v16.dtype == torch.float32
    # same as float32 on the bf16-rounded inputs: the sum itself was not done in bf16
    v32 = loss(pred.bfloat16().float(), target.bfloat16().float())
    assert v16.item() == pytest.approx(v32.item(), rel=1e-6)


def test_mse_hand_computed_weighted():
    pred = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])  # [1, 2, 1, 2]
    target = torch.zeros(1, 2, 1, 2)
    weight = torch.tensor([[1.0, 0.0]])
    # channel 0: 1 * (1 + 9) = 10 ; channel 1: 0 * (4 + 0) = 0 ; mean over 4 elements = 2.5
    assert build_loss("mse")(pred, target, weight).item() == pytest.approx(2.5)
    # unweighted: (1 + 9 + 4 + 0) / 4 = 3.5
    assert build_loss("mse")(pred, target).item() == pytest.approx(3.5)


def test_mse_gradcheck_and_activation():
    pred = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    weight = torch.rand(2, 3, dtype=torch.float64)
    loss = build_loss("mse")
    assert loss.activation == "identity" and build_loss("daf").activation == "sigmoid"
    assert torch.autograd.gradcheck(lambda x: loss(x, target, weight), (pred,))


def test_mse_fractional_weights_match_loop():
    torch.manual_seed(5)
    pred, target = torch.randn(2, 3, 4, 5, dtype=torch.float64), torch.rand(2, 3, 4, 5, dtype=torch.float64)
    weight = torch.rand(2, 3, dtype=torch.float64)
    total = 0.0
    for b in range(2):
        for c in range(3):
            for i in range(4):
                for j in range(5):
                    total += float(weight[b, c]) * (float(pred[b, c, i, j]) - float(target[b, c, i, j])) ** 2
    # mean over all B*C*H*W = 120 elements, removed/partial channels still counted
    assert build_loss("mse")(pred, target, weight).item() == pytest.approx(total / 120, rel=1e-12)
