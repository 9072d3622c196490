"""adaptive_wing and ohkm_mse: hand-computed cases, slow loop references, gradcheck."""
import math

import pytest
import torch

from kpdet.losses import build_loss

OMEGA, THETA, EPS, ALPHA, W_MAP = 14.0, 0.5, 1.0, 2.1, 10.0


def one(pred: float, target: float) -> tuple[torch.Tensor, torch.Tensor]:
    as_map = lambda v: torch.tensor([[[[v]]]], dtype=torch.float64)  # [1, 1, 1, 1]
    return as_map(pred), as_map(target)


def awing_loop(pred, target, weight=None):
    """Wang et al. ICCV 2019, Eqs. 6-9, pixel by pixel; M = 3x3 dilation of target > 0.2 by loops."""
    B, K, H, W = pred.shape
    total = 0.0
    for b in range(B):
        for k in range(K):
            w = 1.0 if weight is None else float(weight[b, k])
            for i in range(H):
                for j in range(W):
                    y, d = float(target[b, k, i, j]), abs(float(target[b, k, i, j] - pred[b, k, i, j]))
                    a = ALPHA - y
                    if d < THETA:
                        value = OMEGA * math.log(1 + (d / EPS) ** a)
                    else:
                        big_a = OMEGA / (1 + (THETA / EPS) ** a) * a * (THETA / EPS) ** (a - 1) / EPS
                        value = big_a * d - (THETA * big_a - OMEGA * math.log(1 + (THETA / EPS) ** a))
                    m = any(float(target[b, k, i2, j2]) > 0.2 for i2 in range(max(0, i - 1), min(H, i + 2))
                            for j2 in range(max(0, j - 1), min(W, j + 2)))
                    total += w * (W_MAP * m + 1) * value
    return total / pred.numel()


@pytest.mark.parametrize("pred,target,expected", [
    # y = 0 (a = 2.1), d = 0.3 < theta: 14 ln(1 + 0.3^2.1) = 14 ln(1.0797911) = 14 * 0.0767676 = 1.0747468;
    # the mask is 0 (no target > 0.2): W_map = 1
    (0.3, 0.0, 1.0747468),
    # y = 0, d = 1 >= theta: (theta/eps)^a = 0.5^2.1 = 0.2332582, 0.5^1.1 = 0.4665165
    # A = 14 / 1.2332582 * 2.1 * 0.4665165 = 11.1214216; C = 0.5 A - 14 ln(1.2332582) = 5.5607108 - 2.9352351
    #   = 2.6254757; loss = A * 1 - C = 8.4959459
    (1.0, 0.0, 8.4959459),
    # y = 1 (a = 1.1), d = 0.2: 14 ln(1 + 0.2^1.1) = 14 ln(1.1702680) = 2.2012588; mask 1 -> x 11 = 24.2138465
    (0.8, 1.0, 24.2138465),
    # y = 1, d = 1: 0.5^1.1 = 0.4665165, 0.5^0.1 = 0.9330330, A = 14 / 1.4665165 * 1.1 * 0.9330330 = 9.7978496
    # C = 0.5 A - 14 ln(1.4665165) = 4.8989248 - 5.3604580 = -0.4615332
    # (A - C) * 11 = 10.2593828 * 11 = 112.8532109
    (0.0, 1.0, 112.8532109),
])
def test_adaptive_wing_hand_computed(pred, target, expected):
    assert build_loss("adaptive_wing")(*one(pred, target)).item() == pytest.approx(expected, abs=1e-6)


def test_adaptive_wing_weight_map_is_the_dilated_mask():
    target = torch.tensor([[[[0.0, 0.0, 0.0, 1.0, 0.0]]]], dtype=torch.float64)
    # M = 3x3 dilation of target > 0.2 = [0, 0, 1, 1, 1] -> W_map = [1, 1, 11, 11, 11]
    # pred = target + 0.3: y = 0 pixels 1.0747468 (above), the y = 1 pixel 14 ln(1 + 0.3^1.1)
    #   = 14 ln(1.2659704) = 3.3017457
    # L = (1.0747468 * (1 + 1 + 11 + 11) + 11 * 3.3017457) / 5 = (25.7939229 + 36.3192027) / 5 = 12.4226251
    assert build_loss("awing")(target + 0.3, target).item() == pytest.approx(12.4226251, abs=1e-6)


def test_adaptive_wing_pieces_meet_in_value_and_slope_at_theta():
    loss = build_loss("adaptive_wing")
    for y in (0.0, 0.4, 1.0):
        values, slopes = [], []
        for p in (y + THETA - 1e-7, y + THETA + 1e-7):
            x = torch.tensor([[[[p]]]], dtype=torch.float64, requires_grad=True)
            v = loss(x, torch.tensor([[[[y]]]], dtype=torch.float64))
            values.append(v.item())
            slopes.append(torch.autograd.grad(v, x)[0].item())
        # a jump at theta would show as a difference beyond slope * 2e-7
        assert values[1] - values[0] == pytest.approx(slopes[0] * 2e-7, abs=1e-9)
        assert slopes[0] == pytest.approx(slopes[1], rel=1e-5)


def gauss_maps(B=2, K=3, H=5, W=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    cy, cx = torch.randint(0, H, (B, K, 1, 1), generator=g), torch.randint(0, W, (B, K, 1, 1), generator=g)
    target = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 2.0).double()
    pred = (target + 0.6 * torch.randn(B, K, H, W, generator=g, dtype=torch.float64))
    weight = torch.rand(B, K, generator=g, dtype=torch.float64)
    weight[0, 1] = 0.0
    return pred, target, weight


def test_adaptive_wing_matches_loop_and_gradcheck():
    pred, target, weight = gauss_maps()
    loss = build_loss("adaptive_wing")
    assert loss(pred, target, weight).item() == pytest.approx(awing_loop(pred, target, weight), rel=1e-10)
    # both pieces are visited: |d| < theta and >= theta
    d = (pred - target).abs()
    assert (d < THETA).any() and (d >= THETA).any()
    assert torch.autograd.gradcheck(lambda x: loss(x, target, weight), pred.requires_grad_())


def ohkm_loop(pred, target, weight=None, topk=8):
    """CPN's OHKM: per instance, the mean of the k' = min(topk, K) largest w * mean_hw (pred - y)^2."""
    B, K = pred.shape[:2]
    total = 0.0
    for b in range(B):
        losses = []
        for k in range(K):
            w = 1.0 if weight is None else float(weight[b, k])
            losses.append(w * float(((pred[b, k] - target[b, k]) ** 2).mean()))
        hardest = sorted(losses, reverse=True)[:min(topk, K)]
        total += sum(hardest) / len(hardest)
    return total / B


def test_ohkm_hand_computed():
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.0, 1.0]], dtype=torch.float64).reshape(2, 3, 1, 1)
    target = torch.zeros_like(pred)
    # l = [[1, 4, 9], [0.25, 0, 1]]; top-2: (9 + 4) / 2 = 6.5 and (1 + 0.25) / 2 = 0.625; mean 3.5625
    assert build_loss({"type": "ohkm_mse", "topk": 2})(pred, target).item() == pytest.approx(3.5625)
    # weights [[1, 1, 0], [1, 1, 1]]: l = [[1, 4, 0], ...]; top-2 (4 + 1) / 2 = 2.5; mean (2.5 + 0.625) / 2
    weight = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    assert build_loss({"type": "ohkm_mse", "topk": 2})(pred, target, weight).item() == pytest.approx(1.5625)


def test_ohkm_with_k_at_least_K_is_mse():
    pred, target, weight = gauss_maps(seed=1)
    mse = build_loss("mse")(pred, target, weight).item()
    assert build_loss("ohkm_mse")(pred, target, weight).item() == pytest.approx(mse, rel=1e-12)  # 8 > K = 3
    top3 = build_loss({"type": "ohkm_mse", "topk": 3})
    assert top3(pred, target, weight).item() == pytest.approx(mse, rel=1e-12)


def test_ohkm_matches_loop_and_gradcheck():
    pred, target, weight = gauss_maps(B=3, K=12, H=4, W=3, seed=2)
    loss = build_loss("ohkm_mse")  # topk 8 of 12: 4 keypoints per instance get no gradient
    assert loss(pred, target, weight).item() == pytest.approx(ohkm_loop(pred, target, weight), rel=1e-12)
    x = pred.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(x, target, weight), x)
    assert ((grad.flatten(2).abs().amax(2) > 0).sum(1) == 8).all()
    assert torch.autograd.gradcheck(lambda p: loss(p, target, weight), pred.requires_grad_())


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="topk must be a positive integer, got 0"):
        build_loss({"type": "ohkm_mse", "topk": 0})
    with pytest.raises(ValueError, match="alpha=0.5"):
        build_loss({"type": "awing", "alpha": 0.5})
    with pytest.raises(ValueError, match=r"\[B, K, H, W\]"):
        build_loss("awing")(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
