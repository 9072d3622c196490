"""Segmentation family in both modes: hand-computed cases, loop references, gradcheck, |logit| = 100."""
import math

import pytest
import torch

from kpdet.losses import build_loss

LOG2, LOG3 = math.log(2), math.log(3)
PIXELWISE = ["ce", "dce", "focal", "dual_focal"]
REGION = ["dice", "generalized_dice", "pointwise_exponential"]


def term(name, z, y, p):
    """Per-class term l(z, y) of CONTRACT.md written with plain math."""
    if name == "ce":
        return -y * math.log(z)
    if name == "dce":
        return -y * math.log(z) + p.get("beta", 1) * (1 - y) * math.log(p.get("alpha", 1) + z)
    if name == "focal":
        return -p.get("alpha", 1) * (1 - z) ** p.get("gamma", 2) * y * math.log(z)
    if name == "dual_focal":
        a, b, g, r = (p.get(k, 1) for k in ("alpha", "beta", "gamma", "rho"))
        return -y * math.log(z) - b * (1 - y) * math.log(r - z) + a * abs(y - z) ** g
    raise KeyError(name)


def pixelwise_loop(name, p, pred, y, mode, weight=None):
    B, C, H, W = pred.shape
    total = 0.0
    for b in range(B):
        for i in range(H):
            for j in range(W):
                xs = [float(pred[b, c, i, j]) for c in range(C)]
                ys = [float(y[b, c, i, j]) for c in range(C)]
                if mode == "multiclass":
                    e = [math.exp(v) for v in xs]
                    total += sum(term(name, ec / sum(e), yc, p) for ec, yc in zip(e, ys))
                    continue
                for c in range(C):
                    w = 1.0 if weight is None else float(weight[b, c])
                    z = 1 / (1 + math.exp(-xs[c]))
                    total += w * (term(name, z, ys[c], p) + term(name, 1 - z, 1 - ys[c], p))
    return total / (B * H * W * (C if mode == "multilabel" else 1))


def region_loop(name, p, pred, y, mode, weight=None):
    """Per-(sample, channel) sums by loops; then dice/pel per channel or GDL per sample."""
    B, C, H, W = pred.shape
    probs = torch.sigmoid(pred) if mode == "multilabel" else torch.softmax(pred, 1)
    w = [[1.0] * C for _ in range(B)] if weight is None else weight.tolist()  # floats, not tensors
    out, wsum = 0.0, 0.0
    for b in range(B):
        S = {k: [0.0] * C for k in ("pg", "p", "g", "png")}
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    pv, gv = float(probs[b, c, i, j]), float(y[b, c, i, j])
                    S["pg"][c] += pv * gv
                    S["p"][c] += pv
                    S["g"][c] += gv
                    S["png"][c] += pv ** p.get("n", 2) * gv
        if name == "generalized_dice":
            cw = [1 / S["g"][c] ** 2 if S["g"][c] > 0 else None for c in range(C)]
            fin = [v for c, v in enumerate(cw) if v is not None and w[b][c] > 0]
            cw = [(max(fin) if fin else 1.0) if v is None else v for v in cw]
            num = 2 * sum(cw[c] * w[b][c] * S["pg"][c] for c in range(C))
            den = sum(cw[c] * w[b][c] * (S["g"][c] + S["p"][c]) for c in range(C))
            sw = sum(w[b])
            out, wsum = out + sw * (1 - num / den), wsum + sw
            continue
        for c in range(C):
            if name == "dice":
                s = p.get("smooth", 1e-5)
                lc = 1 - (2 * S["pg"][c] + s) / (S["p"][c] + S["g"][c] + s)
            else:
                den = S["pg"][c] + (S["p"][c] - S["pg"][c]) + (S["g"][c] - S["pg"][c])
                lc = 1 - S["png"][c] / den
            out, wsum = out + w[b][c] * lc, wsum + w[b][c]
    return out / wsum


def inputs(mode, seed=0, B=2, C=3, H=4, W=5, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(B, C, H, W, generator=g, dtype=torch.float64) * scale
    if mode == "multilabel":
        return pred, torch.rand(B, C, H, W, generator=g, dtype=torch.float64)
    return pred, torch.softmax(torch.randn(B, C, H, W, generator=g, dtype=torch.float64) * 2, 1)


# ---------- hand-computed values (pred = 0 -> p = 0.5 unless stated) ----------

@pytest.mark.parametrize("name,expected", [
    ("ce", LOG2),                   # class p: -1*log .5 = 0.693147 ; class 1-p: y'=0 -> 0
    ("dce", LOG2 + math.log(1.5)),  # 0.693147 + [class 1-p: 1*(1-0)*log(1+0.5) = 0.405465] = log 3
    ("focal", 0.25 * LOG2),         # -(1-.5)^2 * 1 * log .5 = 0.173287 ; y'=0 term is 0
    ("dual_focal", 2 * (LOG2 + 0.5)),  # p: -log .5 + |1-.5| ; 1-p: -1*log(1-.5) + |0-.5| -> 2.386294
])
def test_pixelwise_multilabel_hand(name, expected):
    pred, target = torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)
    loss = build_loss({"type": name, "mode": "multilabel"})
    assert loss(pred, target).item() == pytest.approx(expected, abs=1e-6)


def test_multiclass_hand_ce_and_dual_focal():
    pred = torch.tensor([0.0, LOG3]).reshape(1, 2, 1, 1)  # softmax -> z = (0.25, 0.75)
    idx = torch.tensor([[[1]]])
    # ce: -log 0.75 = 0.287682
    ce = build_loss({"type": "ce", "mode": "multiclass"})
    assert ce(pred, idx).item() == pytest.approx(0.287682, abs=1e-6)
    # dual_focal: class 0 (y=0): -log(1-.25) + .25 = 0.287682 + 0.25 ; class 1 (y=1): -log .75 + .25
    # = 2 * 0.287682 + 0.5 = 1.075364
    dfl = build_loss({"type": "dfl", "mode": "multiclass"})
    assert dfl(pred, idx).item() == pytest.approx(1.075364, abs=1e-6)


def test_wce_hand():
    pred = torch.tensor([0.0, LOG3]).reshape(1, 2, 1, 1).expand(1, 2, 1, 2)  # z = (0.25, 0.75) at both pixels
    idx = torch.tensor([[[0, 1]]])
    # class_weights (2, 1): pixel 0: -2 log .25 = 2.772589 ; pixel 1: -1 log .75 = 0.287682 ; mean = 1.530135
    wce = build_loss({"type": "wce", "class_weights": [2.0, 1.0]})
    assert wce(pred, idx).item() == pytest.approx(1.530135, abs=1e-6)
    # inverse_frequency: 2 pixels / (2 classes * 1 pixel each) = 1 for both -> (1.386294 + 0.287682) / 2
    assert build_loss("wce")(pred, idx).item() == pytest.approx(0.836988, abs=1e-6)
    # 3 pixels, class counts (2, 1): w = 3/(2*2) = 0.75, 3/(2*1) = 1.5 (class 1 is rarer)
    pred3 = pred[..., :1].expand(1, 2, 1, 3)
    idx3 = torch.tensor([[[0, 0, 1]]])
    # (0.75 * 1.386294 * 2 + 1.5 * 0.287682) / 3 = (2.079442 + 0.431523) / 3 = 0.836988
    assert build_loss("wce")(pred3, idx3).item() == pytest.approx(0.836988, abs=1e-6)


def test_region_hand():
    pred = torch.zeros(1, 1, 1, 4)  # p = 0.5 at 4 pixels
    g = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 1, 4)
    # dice: sum pg = 1, sum p = 2, sum g = 2 -> 1 - (2 + 1e-5) / (4 + 1e-5) = 0.4999988
    assert build_loss("dice")(pred, g).item() == pytest.approx(1 - 2.00001 / 4.00001, abs=1e-7)
    # pel (n=2): sum p^2 g = 0.25*2 = 0.5 ; den = 1 + 1 + 1 = 3 -> 1 - 0.5/3 = 0.833333
    assert build_loss("pel")(pred, g).item() == pytest.approx(0.833333, abs=1e-6)


def test_generalized_dice_hand_with_absent_class():
    pred = torch.zeros(1, 3, 1, 4)
    g = torch.tensor([[1.0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]).reshape(1, 3, 1, 4)
    # ch0: G=2, w=1/4, sum pg = 1, sum(g+p) = 4 ; ch1: G=1, w=1, sum pg = 0.5, sum(g+p) = 3
    # ch2 absent: w = largest finite = 1, sum pg = 0, sum(g+p) = 2
    # num = 2*(0.25*1 + 1*0.5) = 1.5 ; den = 0.25*4 + 1*3 + 1*2 = 6 -> 1 - 1.5/6 = 0.75
    assert build_loss("gdl")(pred, g).item() == pytest.approx(0.75, abs=1e-6)
    # without the absent channel: den = 4 -> 1 - 1.5/4 = 0.625
    assert build_loss("gdl")(pred[:, :2], g[:, :2]).item() == pytest.approx(0.625, abs=1e-6)


# ---------- loop references, both modes ----------

PARAMS = [("ce", {}), ("dce", {"alpha": 0.5, "beta": 2.0}), ("dce", {"alpha": 0.0}), ("focal", {}),
          ("focal", {"alpha": 0.7, "gamma": 1.5}), ("dual_focal", {"alpha": 0.5, "beta": 2.0, "gamma": 2.0}),
          ("dual_focal", {"gamma": 3.0})]


@pytest.mark.parametrize("name,params", PARAMS)
@pytest.mark.parametrize("mode", ["multilabel", "multiclass"])
def test_pixelwise_matches_loop(name, params, mode):
    pred, y = inputs(mode, seed=1)
    weight = torch.rand(2, 3, dtype=torch.float64) if mode == "multilabel" else None
    loss = build_loss({"type": name, "mode": mode, **params})
    expected = pixelwise_loop(name, params, pred, y, mode, weight)
    assert loss(pred, y, weight).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("mode", ["multilabel", "multiclass"])
@pytest.mark.parametrize("p", [{"rho": 1.5, "gamma": 2.0}, {"rho": 2.0, "gamma": 0.5, "beta": 0.3}])
def test_dual_focal_rho_above_one_matches_loop(mode, p):
    pred, y = inputs(mode, seed=2)
    expected = pixelwise_loop("dual_focal", p, pred, y, mode)
    dfl = build_loss({"type": "dfl", "mode": mode, **p})
    assert dfl(pred, y).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name", REGION)
@pytest.mark.parametrize("mode", ["multilabel", "multiclass"])
def test_region_matches_loop(name, mode):
    pred, y = inputs(mode, seed=3)
    if mode == "multilabel":
        y[1, 2] = 0.0  # an absent class in sample 1
        weight = torch.tensor([[1.0, 0.5, 2.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    else:
        weight = None
    expected = region_loop(name, {}, pred, y, mode, weight)
    loss = build_loss({"type": name, "mode": mode})
    assert loss(pred, y, weight).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name", PIXELWISE + REGION + ["wce"])
def test_multiclass_index_equals_onehot(name):
    pred, _ = inputs("multiclass", seed=4)
    idx = torch.randint(0, 3, (2, 4, 5), generator=torch.Generator().manual_seed(4))
    onehot = torch.nn.functional.one_hot(idx, 3).movedim(-1, 1).double()
    loss = build_loss({"type": name, "mode": "multiclass"})
    assert loss(pred, idx).item() == pytest.approx(loss(pred, onehot).item(), rel=1e-12)


# ---------- gradients ----------

GRAD_CASES = PARAMS + [("dual_focal", {"gamma": 0.5, "rho": 1.5, "beta": 2.0})] + [(n, {}) for n in REGION]


@pytest.mark.parametrize("name,params", GRAD_CASES)
@pytest.mark.parametrize("mode", ["multilabel", "multiclass"])
def test_gradcheck(name, params, mode):
    pred, y = inputs(mode, seed=5, B=2, C=3, H=3, W=3)
    pred.requires_grad_()
    weight = torch.tensor([[1.0, 0.5, 0.0], [2.0, 1.0, 1.0]], dtype=torch.float64)
    weight = weight if mode == "multilabel" else None
    loss = build_loss({"type": name, "mode": mode, **params})
    assert torch.autograd.gradcheck(lambda x: loss(x, y, weight), (pred,))


def test_gradcheck_wce_inverse_frequency():
    pred, y = inputs("multiclass", seed=6, H=3, W=3)
    pred.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: build_loss("wce")(x, y), (pred,))


# ---------- |logit| = 100 in float32 ----------

@pytest.mark.parametrize("name", PIXELWISE + REGION)
@pytest.mark.parametrize("mode", ["multilabel", "multiclass"])
def test_large_logits_float32_match_float64(name, mode):
    pred, y = inputs(mode, seed=7)
    pred = torch.where(pred > 0, 100.0, -100.0).double()
    pred[0, 0, 0, 0] = 0.5  # one moderate logit among saturated ones
    loss = build_loss({"type": name, "mode": mode})
    x32 = pred.float().requires_grad_()
    v32 = loss(x32, y.float())
    (g32,) = torch.autograd.grad(v32, x32)
    x64 = pred.clone().requires_grad_()
    v64 = loss(x64, y)
    (g64,) = torch.autograd.grad(v64, x64)
    assert torch.isfinite(v32) and torch.isfinite(g32).all()
    assert v32.item() == pytest.approx(v64.item(), rel=1e-5)
    assert torch.allclose(g32.double(), g64, rtol=1e-4, atol=1e-7)


def test_multiclass_log_one_minus_z_at_logit_100():
    pred = torch.tensor([100.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    idx = torch.tensor([[[1]]])
    # z ~ (1, e^-100, e^-100). Terms of dual_focal (alpha=beta=gamma=rho=1):
    # class 0 (y=0): -log(1-z0) + z0 = -(log(2 e^-100) - log(1 + 2e^-100)) + 1 = 100 - log 2 + 1
    # class 1 (y=1): -log z1 + |1 - z1| = 100 + 1 ; class 2 (y=0): -log(1 - z2) + z2 ~ 0
    # total = 202 - log 2 = 201.306853 (an eps clamp on 1 - z would give about 202 - 16.1 or less)
    dfl = build_loss({"type": "dual_focal", "mode": "multiclass"})
    assert dfl(pred, idx).item() == pytest.approx(202 - LOG2, rel=1e-6)


# ---------- mode rules ----------

def test_mode_errors():
    pred, y = inputs("multiclass")
    with pytest.raises(ValueError, match="multiclass"):
        build_loss({"type": "ce", "mode": "multiclass"})(pred, y, torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="multiclass"):
        build_loss({"type": "wce", "mode": "multilabel"})
    with pytest.raises(ValueError, match="mode"):
        build_loss({"type": "dice", "mode": "softmax"})
    assert build_loss({"type": "dice", "mode": "multiclass"}).activation == "softmax"
    assert build_loss("dice").activation == "sigmoid"


@pytest.mark.parametrize("name,params", PARAMS)
def test_flat_inputs_use_the_generic_path_with_the_same_value(name, params):
    # [B, C] inputs (no spatial dims) go through the per-class `term` path, [B, C, 1, 1]
    # through the fused multilabel pass: both must agree
    pred, y = inputs("multilabel", seed=8, H=1, W=1)
    loss = build_loss({"type": name, **params})
    w = torch.tensor([[1.0, 0.5, 0.0], [2.0, 1.0, 1.0]], dtype=torch.float64)
    flat = loss(pred[:, :, 0, 0], y[:, :, 0, 0], w).item()
    assert flat == pytest.approx(loss(pred, y, w).item(), rel=1e-12)
