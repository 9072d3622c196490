"""squared_emd with a ground distance (ground_distance = matrix | learned): the matrix checks, the
D-form by hand, where it meets the ordinal CDF form (and the identity that says where not), the
rank matrix from centroids, and the learner's epochs, warm-up schedule and state."""
import json

import numpy as np
import pytest
import torch

from kpdet.losses import build_loss
from kpdet.losses.ground_distance import (
    GroundDistanceLearner,
    load_ground_distance,
    rank_distance,
    tree_distance,
)

LINE3 = [[0, 1, 2], [1, 0, 1], [2, 1, 0]]  # |i - j| for 3 classes


def line(C: int) -> list[list[int]]:
    return [[abs(i - j) for j in range(C)] for i in range(C)]


# ---- the matrix: where it comes from, what it must be ---------------------------------------------

def test_matrix_from_a_list_a_npy_and_a_json_file(tmp_path):
    np.save(tmp_path / "d.npy", np.array(LINE3, dtype=np.float32))
    (tmp_path / "d.json").write_text(json.dumps(LINE3))
    for spec in (LINE3, str(tmp_path / "d.npy"), tmp_path / "d.json"):
        assert load_ground_distance(spec, 3).tolist() == LINE3


@pytest.mark.parametrize("matrix, message", [
    ([[0, 1, 2], [1, 0, 1]], r"square .* shape \(2, 3\)"),
    ([[0, -1, 2], [-1, 0, 1], [2, 1, 0]], r"entry \(0, 1\) = -1 is negative"),
    ([[0, 1, 2], [1, 0.5, 1], [2, 1, 0]], r"entry \(1, 1\) = 0.5 is on the diagonal but not 0"),
    ([[0, 1, 2], [1, 0, 1], [3, 1, 0]], r"entry \(0, 2\) = 2 is not symmetric: \[j, i\] = 3"),
    ([[0, 1, float("nan")], [1, 0, 1], [float("nan"), 1, 0]], r"entry \(0, 2\) = nan is not finite"),
    (line(4), r"is 4 x 4 but there are 3 classes"),
    ([[0, "a"], ["a", 0]], r"not a C x C matrix of numbers"),
])
def test_bad_matrices_name_the_entry_and_value(matrix, message):
    with pytest.raises(ValueError, match=message):
        load_ground_distance(matrix, 3)


def test_bad_files_and_parameters(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_ground_distance(str(tmp_path / "missing.npy"))
    with pytest.raises(ValueError, match=".npy or .json"):
        load_ground_distance(str(tmp_path / "d.csv"))
    with pytest.raises(ValueError, match="not one of ordinal, matrix, learned"):
        build_loss({"type": "squared_emd", "ground_distance": "hamming"})
    with pytest.raises(ValueError, match="`matrix` must be given"):
        build_loss({"type": "squared_emd", "ground_distance": "matrix"})
    with pytest.raises(ValueError, match="`matrix` must be given"):
        build_loss({"type": "squared_emd", "matrix": LINE3})  # ordinal: a matrix would be ignored
    with pytest.raises(ValueError, match="needs `classes`"):
        build_loss({"type": "squared_emd", "ground_distance": "learned"})


# ---- the D-form: sum_i p_i^2 (D[i, t]^exponent + bias) --------------------------------------------

def test_matrix_form_by_hand():
    D = [[0, 1, 4], [1, 0, 2], [4, 2, 0]]
    pred = torch.zeros(1, 3)  # p = (1/3, 1/3, 1/3), p_i^2 = 1/9
    loss = build_loss({"type": "squared_emd", "ground_distance": "matrix", "matrix": D})
    # t = 0: column (0, 1, 4) -> (0 + 1 + 4) / 9 = 5/9; t = 2: column (4, 2, 0) -> 6/9
    assert loss(pred, torch.tensor([0])).item() == pytest.approx(5 / 9)
    assert loss(pred, torch.tensor([2])).item() == pytest.approx(6 / 9)
    # distribution q = (1/2, 0, 1/2): (5/9 + 6/9) / 2 = 11/18
    assert loss(pred, torch.tensor([[0.5, 0.0, 0.5]])).item() == pytest.approx(11 / 18)
    # exponent 2, bias 0.5, t = 0: cost (0.5, 1.5, 16.5) -> 18.5 / 9 (the reproduction's second setting)
    shaped = build_loss({"type": "squared_emd", "ground_distance": "matrix", "matrix": D, "exponent": 2,
                         "bias": 0.5})
    assert shaped(pred, torch.tensor([0])).item() == pytest.approx(18.5 / 9)
    # weighted mean over rows (5/9, 6/9) with weights (1, 3): (5/9 + 18/9) / 4 = 23/36
    two = torch.zeros(2, 3)
    assert loss(two, torch.tensor([0, 2]), torch.tensor([1.0, 3.0])).item() == pytest.approx(23 / 36)


def test_matrix_form_gradcheck():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (4,), generator=g)
    loss = build_loss({"type": "squared_emd", "ground_distance": "matrix", "matrix": line(5), "bias": 0.25})
    loss = loss.double()
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (pred,))


def test_exact_emd_to_a_one_hot_target_is_the_l1_cdf_form():
    """All mass moves to t, so EMD(p, t) = sum_i p_i |i - t|; on a line that is sum_k |CDF(p)_k - CDF(t)_k|
    (each unit of mass at i crosses the |i - t| CDF steps between i and t): the L1 CDF form, for any p."""
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(50, 6, generator=g, dtype=torch.float64), -1)
    t = torch.randint(0, 6, (50,), generator=g)
    exact = (p * torch.tensor(line(6), dtype=torch.float64)[:, t].T).sum(-1)
    cdf_t = (torch.arange(6) >= t[:, None]).double()
    torch.testing.assert_close(exact, (p.cumsum(-1) - cdf_t).abs().sum(-1))


def _both(pred, target, C):
    ordinal = build_loss("squared_emd")(pred, target).item()
    matrix = build_loss({"type": "squared_emd", "ground_distance": "matrix", "matrix": line(C)})
    return ordinal, matrix(pred, target).item()


def test_matrix_of_line_distances_equals_the_ordinal_loss_where_the_math_says():
    """CDF form = sum_i p_i^2 |i - t| + 2 sum_{i<j on the same side of t} p_i p_j min(|i - t|, |j - t|):
    the D-form is its diagonal. They agree exactly when no two classes on one side of t share mass."""
    g = torch.Generator().manual_seed(2)
    pred2 = torch.randn(20, 2, generator=g, dtype=torch.float64)  # C = 2: one class per side, always
    ordinal, matrix = _both(pred2, torch.randint(0, 2, (20,), generator=g), 2)
    assert matrix == pytest.approx(ordinal, rel=1e-12)
    pred3 = torch.randn(20, 3, generator=g, dtype=torch.float64)  # C = 3, target in the middle
    ordinal, matrix = _both(pred3, torch.ones(20, dtype=torch.long), 3)
    assert matrix == pytest.approx(ordinal, rel=1e-12)
    confident = torch.full((5, 5), -100.0, dtype=torch.float64)  # one-hot predictions: class 4 - t away
    confident[:, 4] = 100.0
    ordinal, matrix = _both(confident, torch.arange(5), 5)
    assert matrix == pytest.approx(ordinal) and ordinal == pytest.approx((4 + 3 + 2 + 1 + 0) / 5)


def test_where_they_differ_by_hand():
    # C = 3 uniform, t = 0: CDF form 5/9 (test_ordinal.py); D-form (0 + 1 + 2) / 9 = 3/9; the missing
    # cross term is 2 * p_1 p_2 * min(1, 2) = 2/9 (classes 1 and 2 both lie on t's right)
    ordinal, matrix = _both(torch.zeros(1, 3), torch.tensor([0]), 3)
    assert (ordinal, matrix) == (pytest.approx(5 / 9), pytest.approx(3 / 9))


def test_ordinal_loss_is_the_cramer_form_of_line_distances():
    """The CDF form equals sum_i p_i D[i, t] - 1/2 sum_ij p_i p_j D[i, j] with D = |i - j| (the Cramer
    / energy distance to the one-hot target): the general-D counterpart that keeps the cross terms."""
    g = torch.Generator().manual_seed(3)
    pred = torch.randn(30, 7, generator=g, dtype=torch.float64)
    t = torch.randint(0, 7, (30,), generator=g)
    p, D = torch.softmax(pred, -1), torch.tensor(line(7), dtype=torch.float64)
    cramer = (p * D[:, t].T).sum(-1) - 0.5 * torch.einsum("bi,ij,bj->b", p, D, p)
    assert build_loss("squared_emd")(pred, t).item() == pytest.approx(cramer.mean().item(), rel=1e-12)


# ---- learning the matrix ---------------------------------------------------------------------------

def test_rank_distance_by_hand():
    # centroids on a line at 0, 1, 3, 6. Row ranks (0 = itself): row 0 (0, 1, 3, 6) -> 0 1 2 3;
    # row 1 (1, 0, 2, 5) -> 1 0 2 3; row 2 (3, 2, 0, 3) -> 2 1 0 3 (tie: lower index first);
    # row 3 (6, 5, 3, 0) -> 3 2 1 0.  D = (R + R^T) / (2 * 3)
    D = rank_distance(torch.tensor([[0.0], [1.0], [3.0], [6.0]]))
    expected = torch.tensor([[0, 2, 4, 6], [2, 0, 3, 5], [4, 3, 0, 4], [6, 5, 4, 0]], dtype=torch.float64) / 6
    torch.testing.assert_close(D, expected)
    # class 3 never seen: rows 0-2 rank it last (3); its own row, all ties, ranks 0, 1, 2 by index
    # (1, 2, 3) -> column 3 = (3 + 1, 3 + 2, 3 + 3, 0) / 6
    seen = torch.tensor([True, True, True, False])
    unseen = rank_distance(torch.tensor([[0.0], [1.0], [3.0], [0.5]]), seen)
    assert unseen[:, 3].tolist() == pytest.approx([4 / 6, 5 / 6, 1.0, 0.0])


def test_tree_distance_by_hand():
    # centroids on a line at 0, 1, 3, 6 (uneven): the minimum spanning tree is the chain 0-1-2-3
    # (edges 1, 2, 3 beat the skips 3, 5, 6), so D = hops / 3 = |i - j| / 3 whatever the spacing
    # (rank_distance above cannot: its D puts the pair (1, 2) at 3/6 but (0, 1) at 2/6)
    torch.testing.assert_close(tree_distance(torch.tensor([[0.0], [1.0], [3.0], [6.0]])),
                               torch.tensor(line(4), dtype=torch.float64) / 3)
    # the same points listed in another order (class c at position [0, 6, 1, 3][c]): the chain is
    # 0-2-3-1, D = chain positions' differences: class 1 is 3 hops from 0, class 2 one hop
    D = tree_distance(torch.tensor([[0.0], [6.0], [1.0], [3.0]])) * 3
    assert D.tolist() == [[0, 3, 1, 2], [3, 0, 2, 1], [1, 2, 0, 1], [2, 1, 1, 0]]
    # a star: three points around a centre (class 0) -> every leaf 1 hop from it, 2 from each other
    star = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.1], [-1.2, 0.0]])
    assert (tree_distance(star) * 3).tolist() == [[0, 1, 1, 1], [1, 0, 2, 2], [1, 2, 0, 2], [1, 2, 2, 0]]
    # only the order of the distances matters: a monotone warp of the line gives the same D
    torch.testing.assert_close(tree_distance(torch.tensor([[0.0], [1.0], [3.0], [6.0]]) ** 3),
                               tree_distance(torch.tensor([[0.0], [1.0], [3.0], [6.0]])))
    # class 2 never seen: the tree of 0, 1, 3 (at 0, 1, 6: chain 0-1-3), class 2 at D = 1 from all
    seen = torch.tensor([True, True, False, True])
    D = tree_distance(torch.tensor([[0.0], [1.0], [0.5], [6.0]]), seen) * 3
    assert D.tolist() == [[0, 1, 3, 2], [1, 0, 3, 1], [3, 3, 0, 3], [2, 1, 3, 0]]


def test_learner_momentum_averages_centroids_across_epochs():
    learner = GroundDistanceLearner(3, warmup_epochs=2, distance="tree", momentum=0.75)
    # epoch 0: first sightings take the epoch's mean: (1, 0), (0, 1), (-1, 0)
    learner.observe(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), torch.tensor([0, 1, 2]))
    learner.end_epoch()
    # chain 0-1-2 (edges sqrt 2 beat 0-2 at 2): D = |i - j| / 2
    torch.testing.assert_close(learner.matrix, torch.tensor(LINE3, dtype=torch.float64) / 2)
    # epoch 1: class 0 at (0, -1), class 1 absent, class 2 at (-1, 0) again:
    # c0 = 0.75 (1, 0) + 0.25 (0, -1) = (0.75, -0.25); c1 kept (0, 1); c2 = (-1, 0)
    learner.observe(torch.tensor([[0.0, -1.0], [-1.0, 0.0]]), torch.tensor([0, 2]))
    learner.end_epoch()
    expected = torch.tensor([[0.75, -0.25], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(learner.centroids, expected)
    # distances: 0-1 sqrt(0.5625 + 1.5625) = 1.46, 0-2 sqrt(3.0625 + 0.0625) = 1.77, 1-2 = 1.41:
    # tree 0-1-2 again
    torch.testing.assert_close(learner.matrix, torch.tensor(LINE3, dtype=torch.float64) / 2)
    with pytest.raises(ValueError, match=r"centroid_momentum must be in \[0, 1\)"):
        GroundDistanceLearner(3, momentum=1.0)
    with pytest.raises(ValueError, match="learned_distance='mst' is not one of rank, tree"):
        GroundDistanceLearner(3, distance="mst")


def test_learner_centroids_use_l2_normalised_features():
    learner = GroundDistanceLearner(3, warmup_epochs=2)
    # class 0: (3, 4) and (0, 2) -> normalised (0.6, 0.8), (0, 1) -> centroid (0.3, 0.9);
    # class 1: (1, 0); class 2: (-5, 0) -> (-1, 0)
    learner.observe(torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]]), torch.tensor([0, 0, 1]))
    learner.observe(torch.tensor([[-5.0, 0.0]]), torch.tensor([2]))
    learner.end_epoch()
    centroids = torch.tensor([[0.3, 0.9], [1, 0], [-1, 0]], dtype=torch.float64)
    torch.testing.assert_close(learner.centroids, centroids)
    # distances: 0-1 sqrt(0.49 + 0.81) = 1.14, 0-2 sqrt(1.69 + 0.81) = 1.58, 1-2 = 2
    # ranks: row 0: 0 1 2; row 1: 1 0 2; row 2: 1 2 0 -> D = (R + R^T) / 4
    expected = torch.tensor([[0, 2, 3], [2, 0, 4], [3, 4, 0]], dtype=torch.float64) / 4
    torch.testing.assert_close(learner.matrix, expected)
    # an epoch without class 2 keeps its centroid
    learner.observe(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1]))
    learner.end_epoch()
    assert learner.centroids[2].tolist() == [-1.0, 0.0] and learner.centroids[0].tolist() == [0.0, 1.0]


def _learned_step(loss, logits, labels, features):
    loss.learner.observe(features, labels)
    return loss(logits, labels)


def test_learned_schedule_cross_entropy_then_the_weighted_emd_term():
    loss = build_loss({"type": "squared_emd", "ground_distance": "learned", "classes": 2, "warmup_epochs": 2,
                       "balance": 2.0})
    logits, labels = torch.tensor([[0.0, 0.0]]), torch.tensor([0])
    features = torch.tensor([[1.0, 0.0]])
    ce = np.log(2)  # uniform over 2 classes: -log(1/2)
    # epoch 0: CE alone, no matrix yet
    assert _learned_step(loss, logits, labels, features).item() == pytest.approx(ce)
    loss.learner.observe(torch.tensor([[0.0, 1.0]]), torch.tensor([1]))
    loss.learner.end_epoch()
    assert loss.learner.matrix.tolist() == [[0, 1], [1, 0]] and loss.learner.weight == 0
    # epoch 1 (the last of the warm-up): still CE, while the EMD term is measured:
    # p^2 = 1/4 each, cost column t = 0: (0, 1) -> emd = 1/4
    assert loss.learner.recording
    assert _learned_step(loss, logits, labels, features).item() == pytest.approx(ce)
    loss.learner.end_epoch()
    # weight = mean CE / mean EMD / balance = log 2 / (1/4) / 2 = 2 log 2
    assert loss.learner.weight == pytest.approx(2 * ce) and not loss.learner.recording
    # epoch 2 on: CE + weight * EMD = log 2 + 2 log 2 * 1/4 = 1.5 log 2
    assert _learned_step(loss, logits, labels, features).item() == pytest.approx(1.5 * ce)


def test_learner_state_round_trip_continues_identically():
    g = torch.Generator().manual_seed(4)
    batches = [(torch.randn(8, 5, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(6)]
    a, b = GroundDistanceLearner(3, warmup_epochs=2), GroundDistanceLearner(3, warmup_epochs=2)
    for epoch in range(3):
        for features, labels in batches[2 * epoch: 2 * epoch + 2]:
            a.observe(features, labels)
            a.record(torch.tensor(1.0), torch.tensor(0.5))
        a.end_epoch()
        if epoch == 1:  # b picks up a's state after its second epoch (saved with torch.save, weights_only)
            import io

            buffer = io.BytesIO()
            torch.save(a.state_dict(), buffer)
            buffer.seek(0)
            b.load_state_dict(torch.load(buffer, weights_only=True))
    for features, labels in batches[4:6]:
        b.observe(features, labels)
        b.record(torch.tensor(1.0), torch.tensor(0.5))
    b.end_epoch()
    assert (a.epoch, a.weight) == (b.epoch, b.weight) == (3, 1.0 / 0.5 / 3.5)
    torch.testing.assert_close(a.matrix, b.matrix, rtol=0, atol=0)
    torch.testing.assert_close(a.centroids, b.centroids, rtol=0, atol=0)


def test_learner_refuses_bad_settings_and_labels():
    with pytest.raises(ValueError, match="warmup_epochs must be >= 2"):
        GroundDistanceLearner(3, warmup_epochs=1)
    with pytest.raises(ValueError, match=r"classes in \[0, 3\)"):
        GroundDistanceLearner(3).observe(torch.zeros(1, 2), torch.tensor([3]))


def test_an_epoch_without_observations_is_an_error():
    with pytest.raises(RuntimeError, match="no features observed in epoch 0"):
        GroundDistanceLearner(3).end_epoch()


def _learner_rank(rank: int, port: int, out: str) -> None:
    """Each rank observes its own half of the epoch; end_epoch all-reduces the sums."""
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    learner = GroundDistanceLearner(3, warmup_epochs=2, distance="tree")
    features, labels = HALVES[rank]
    learner.observe(torch.tensor(features), torch.tensor(labels))
    learner.record(torch.tensor(1.0 + rank), torch.tensor(0.5))
    learner.end_epoch()
    torch.save({"centroids": learner.centroids, "matrix": learner.matrix}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


# rank 0 sees classes 0 and 1, rank 1 classes 1 and 2 (rank 0 never sees class 2)
HALVES = [([[1.0, 0.0], [0.0, 1.0]], [0, 1]), ([[0.0, -1.0], [-1.0, 0.0]], [1, 2])]


def test_under_torch_distributed_every_rank_gets_the_centroids_of_all_ranks(tmp_path):
    from tests.engine.test_ddp import free_port

    torch.multiprocessing.spawn(_learner_rank, args=(free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    # class 1 = mean of (0, 1) and (0, -1) = (0, 0); classes 0 and 2 from one rank each
    expected = torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    for state in ranks:
        torch.testing.assert_close(state["centroids"], expected)
        # a line -1, 0, 1: the tree is the chain 0-1-2 on both ranks
        torch.testing.assert_close(state["matrix"], torch.tensor(LINE3, dtype=torch.float64) / 2)
