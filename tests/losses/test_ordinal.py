"""Losses over bins: squared_emd (hand-computed CDF arithmetic, loop reference, gradcheck, weights,
|logit| = 100), bin_ce and bin_kl by hand, EMD against CE on distance, the x + y sum."""
import math

import pytest
import torch

from kpdet.losses import build_loss


def emd2_loop(pred, target):
    """Rows = flattened leading dims; sum over bins of squared CDF differences, mean over rows."""
    K = pred.shape[-1]
    probs = torch.softmax(pred, -1).reshape(-1, K).tolist()
    tgt = target.reshape(-1, K).tolist() if target.is_floating_point() else target.reshape(-1).tolist()
    total = 0.0
    for p, t in zip(probs, tgt):
        t = t if isinstance(t, list) else [1.0 if k == t else 0.0 for k in range(K)]
        cp = ct = 0.0
        for k in range(K):
            cp, ct = cp + p[k], ct + t[k]
            total += (cp - ct) ** 2
    return total / len(probs)


def test_hand_computed():
    pred = torch.zeros(1, 3)  # softmax = (1/3, 1/3, 1/3), CDF = (1/3, 2/3, 1)
    loss = build_loss("emd2")
    # bin 0: CDF (1, 1, 1) -> (2/3)^2 + (1/3)^2 + 0 = 5/9
    assert loss(pred, torch.tensor([0])).item() == pytest.approx(5 / 9)
    # bin 2: CDF (0, 0, 1) -> (1/3)^2 + (2/3)^2 = 5/9
    assert loss(pred, torch.tensor([2])).item() == pytest.approx(5 / 9)
    # distribution (0.5, 0, 0.5): CDF (.5, .5, 1) -> (1/3-1/2)^2 + (2/3-1/2)^2 = 1/36 + 1/36 = 1/18
    assert loss(pred, torch.tensor([[0.5, 0.0, 0.5]])).item() == pytest.approx(1 / 18)
    # weighted mean of rows (5/9, 1/18) with weights (1, 3): (5/9 + 3/18) / 4 = (10/18 + 3/18) / 4 = 13/72
    two = torch.zeros(2, 3)
    tgt = torch.tensor([[1.0, 0, 0], [0.5, 0, 0.5]])
    assert loss(two, tgt, torch.tensor([1.0, 3.0])).item() == pytest.approx(13 / 72)


@pytest.mark.parametrize("kind", ["index", "distribution"])
def test_matches_loop_and_gradcheck(kind):
    g = torch.Generator().manual_seed(0)
    pred = (torch.randn(2, 3, 6, generator=g, dtype=torch.float64) * 2).requires_grad_()
    if kind == "index":
        target = torch.randint(0, 6, (2, 3), generator=g)
    else:
        target = torch.softmax(torch.randn(2, 3, 6, generator=g, dtype=torch.float64), -1)
    loss = build_loss("squared_emd")
    assert loss(pred, target).item() == pytest.approx(emd2_loop(pred.detach(), target), rel=1e-12)
    w = torch.tensor([1.0, 0.0], dtype=torch.float64)  # prefix weight [B] over leading dims [B, 3]
    assert torch.autograd.gradcheck(lambda x: loss(x, target, w), (pred,))


def test_prefix_weight_removes_rows():
    pred, target = torch.randn(2, 3, 5), torch.randint(0, 5, (2, 3))
    loss = build_loss("emd2")
    # weight [2] = (1, 0) -> only sample 0 counts: equals the loss on sample 0 alone
    alone = loss(pred[:1], target[:1]).item()
    assert loss(pred, target, torch.tensor([1.0, 0.0])).item() == pytest.approx(alone)
    with pytest.raises(ValueError, match="prefix"):
        loss(pred, target, torch.ones(3))


def test_large_logits_float32():
    pred = torch.tensor([[100.0, -100.0, 0.0, -100.0]], requires_grad=True)
    loss = build_loss("emd2")(pred, torch.tensor([3]))
    # softmax ~ (1, 0, 0, 0): CDF (1, 1, 1, 1) vs target CDF (0, 0, 0, 1): 1 + 1 + 1 + 0 = 3
    assert loss.item() == pytest.approx(3.0, rel=1e-6)
    (g,) = torch.autograd.grad(loss, pred)
    assert torch.isfinite(g).all()


def test_cross_entropy_and_kl_by_hand():
    pred = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))  # softmax = (1/2, 1/4, 1/4)
    ce, kl = build_loss("bin_ce"), build_loss("bin_kl")
    # CE, bin 1: -log(1/4) = log 4
    assert ce(pred, torch.tensor([1])).item() == pytest.approx(math.log(4))
    # soft CE, t = (1/2, 1/2, 0): -(1/2 log 1/2 + 1/2 log 1/4) = 1.5 log 2
    t = torch.tensor([[0.5, 0.5, 0.0]])
    assert ce(pred, t).item() == pytest.approx(1.5 * math.log(2))
    # KL = CE - H(t) = 1.5 log 2 - log 2 = 0.5 log 2 (the 0 log 0 term is 0)
    assert kl(pred, t).item() == pytest.approx(0.5 * math.log(2))
    # KL of a perfect match is 0; weighted mean over rows (weights 1, 0) keeps row 0 only
    both, target = torch.cat([pred, pred]), torch.tensor([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
    assert kl(both, target, torch.tensor([1.0, 0.0])).item() == pytest.approx(0.0, abs=1e-7)


def test_squared_emd_charges_by_distance_unlike_cross_entropy():
    """The same confident prediction, 1 bin and 10 bins from the truth (bin 0, 16 bins)."""
    K, truth = 16, torch.tensor([0])
    one_off = torch.full((1, K), -10.0)
    one_off[0, 1] = 10.0
    ten_off = one_off.roll(9, dims=-1)  # peak at bin 10
    emd2, ce = build_loss("squared_emd"), build_loss("bin_ce")
    # p ~ one-hot at bin m: CDF_p - CDF_t is -1 on bins 0 .. m-1 and 0 after: squared EMD = m
    assert emd2(one_off, truth).item() == pytest.approx(1.0, rel=1e-6)
    assert emd2(ten_off, truth).item() == pytest.approx(10.0, rel=1e-6)
    # CE sees only p at the true bin: the same -log p_0 ~ 20 + log(1 + 15 e^-20) for both
    assert ce(one_off, truth).item() == pytest.approx(ce(ten_off, truth).item(), rel=1e-6)
    assert ce(one_off, truth).item() == pytest.approx(20.0, rel=1e-6)


def test_xy_loss_sums_the_two_axes():
    from kpdet.losses.ordinal import XYLoss

    g = torch.Generator().manual_seed(1)
    px, py = torch.randn(2, 3, 8, generator=g), torch.randn(2, 3, 6, generator=g)
    tx, ty = torch.randint(0, 8, (2, 3), generator=g), torch.randint(0, 6, (2, 3), generator=g)
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    base = build_loss("emd2")
    expected = base(px, tx, w).item() + base(py, ty, w).item()
    assert XYLoss(base)((px, py), (tx, ty), w).item() == pytest.approx(expected)


def test_kl_needs_matching_shapes():
    with pytest.raises(ValueError, match="distribution target"):
        build_loss("bin_kl")(torch.zeros(2, 5), torch.zeros(2, 4))
