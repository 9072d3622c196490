"""Ground distances between classes for the squared EMD (Hou, Yu & Samaras, arXiv 1611.05916).

- `load_ground_distance`: a C x C matrix from a config list or a .npy/.json file, checked
  (square, symmetric, zero diagonal, non-negative, finite, C classes); errors name (i, j) and value.
- `matrix_emd_rows`: the squared-EMD term under a ground distance D for one-hot targets,

      L(p, t) = sum_i p_i^2 (D[i, t]^exponent + bias)        (p = softmax(logits), t the class)

  the form of Hou et al.'s learned-matrix loss as the public reproduction (MilesGrey/emd,
  `_calculate_self_guided_loss`) computes it. The exact EMD to a one-hot target is
  sum_i p_i D[i, t] (all mass moves to t); the squared form squares the probabilities, as the
  CDF form squares CDF differences. See docs/losses.md for where it meets the CDF form.
- `rank_distance`: centroids -> a scale-free D by per-row rank (as the reproduction).
- `tree_distance`: centroids -> a scale-free D by hops in their minimum spanning tree (our choice:
  recovers a chain of classes whatever its spacing).
- `GroundDistanceLearner`: per-class feature centroids over an epoch (optionally an exponential
  moving average across epochs) -> D every epoch, and the cross-entropy warm-up whose end sets
  the EMD term's weight (the reproduction's schedule).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

GROUND_DISTANCES = ("ordinal", "matrix", "learned")
LEARNED_DISTANCES = ("rank", "tree")  # how centroid distances become the learned D


def load_ground_distance(spec, classes: int | None = None, where: str = "matrix") -> Tensor:
    """float64 [C, C] from a nested list, an array, or a path to a .npy/.json file, checked."""
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        if path.suffix not in (".npy", ".json"):
            raise ValueError(f"{where}={str(spec)!r}: a ground-distance file must be .npy or .json")
        if not path.is_file():
            raise FileNotFoundError(f"{where}={str(spec)!r}: no such file")
        spec = np.load(path) if path.suffix == ".npy" else json.loads(path.read_text())
        where = f"{where} ({path})"
    try:
        matrix = torch.as_tensor(np.asarray(spec, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"{where}: not a C x C matrix of numbers: {spec!r}") from None
    check_ground_distance(matrix, classes, where)
    return matrix


def check_ground_distance(matrix: Tensor, classes: int | None = None, where: str = "matrix") -> None:
    """Raise ValueError unless `matrix` is a square, symmetric, zero-diagonal, non-negative,
    finite matrix (of `classes` rows when given); the message names the first bad entry."""
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{where}: must be square (C x C), got shape {tuple(matrix.shape)}")
    if classes is not None and matrix.shape[0] != classes:
        raise ValueError(f"{where}: is {matrix.shape[0]} x {matrix.shape[0]} but there are {classes} classes")
    checks = (("not finite", ~torch.isfinite(matrix)), ("negative", matrix < 0),
              ("on the diagonal but not 0", torch.diag(torch.diag(matrix) != 0)),
              ("not symmetric: [j, i] = {other}", matrix != matrix.T))
    for problem, bad in checks:
        if bad.any():
            i, j = (int(v) for v in bad.nonzero()[0])
            problem = problem.format(other=_show(matrix[j, i]))
            raise ValueError(f"{where}: entry ({i}, {j}) = {_show(matrix[i, j])} is {problem}")


def _show(value: Tensor) -> str:
    return f"{float(value):g}"


def matrix_emd_rows(probs: Tensor, target: Tensor, matrix: Tensor, exponent: float = 1.0,
                    bias: float = 0.0) -> Tensor:
    """Per-row sum_i p_i^2 cost[i, t], cost = D^exponent + bias; probs [..., C], target class
    indices [...] (long) or distributions [..., C] (then the cost of each target class is averaged
    by its probability: sum_t q_t sum_i p_i^2 cost[i, t])."""
    cost = matrix.to(probs.dtype).pow(exponent) + bias
    if target.is_floating_point():
        return (probs.square() * (target @ cost.T)).sum(-1)
    return (probs.square() * cost.T[target]).sum(-1)  # cost.T[t] = column t = (cost[i, t])_i


def centroid_distance(centroids: Tensor, seen: Tensor | None = None) -> Tensor:
    """E [C, C] float64: Euclidean distances between class centroids [C, F]; inf where a class is
    not `seen` (bool [C]), 0 on the diagonal."""
    distance = torch.cdist(centroids[None].double(), centroids[None].double())[0]
    if seen is not None:
        distance = distance.masked_fill(~seen[:, None] | ~seen[None, :], float("inf"))
    return distance.fill_diagonal_(0.0)


def rank_distance(centroids: Tensor, seen: Tensor | None = None) -> Tensor:
    """Scale-free ground distance from class centroids [C, F] (MilesGrey/emd's `_calculate_ground_distances`):

        E[i, j] = ||c_i - c_j||_2;  R[i, j] = rank of E[i, j] in row i (0 = itself, 1 = nearest, ...)
        D = (R + R^T) / (2 (C - 1))   in [0, 1], zero diagonal, symmetric

    A class not `seen` (bool [C]) is farthest from every other (E = inf; ties broken by index).
    """
    C = centroids.shape[0]
    distance = centroid_distance(centroids, seen).fill_diagonal_(-1.0)  # itself first whatever the ties
    ranks = distance.argsort(dim=-1, stable=True).argsort(dim=-1, stable=True).double()
    return (ranks + ranks.T) / (2 * (C - 1))


def tree_distance(centroids: Tensor, seen: Tensor | None = None) -> Tensor:
    """Scale-free ground distance from class centroids [C, F]: hops in their minimum spanning tree,

        E[i, j] = ||c_i - c_j||_2;  T = minimum spanning tree of the complete graph weighted by E;
        D[i, j] = number of edges of T between i and j, / (C - 1)   in [0, 1]

    T depends only on the order of the distances, so D is unchanged by any increasing transform of
    E; classes whose centroids lie along a chain (however unevenly spaced) get D = |i - j| / (C - 1)
    in chain order, where rank_distance cannot (docs/losses.md). T is single-linkage clustering's
    tree (Gower & Ross 1969): tree-structured classes keep their hierarchy. A class not `seen`
    (bool [C]) is at D = 1 from every other. Prim's algorithm, ties broken by index.
    """
    C = centroids.shape[0]
    seen = torch.ones(C, dtype=torch.bool) if seen is None else seen.cpu()
    E = centroid_distance(centroids[seen])
    hops = torch.zeros_like(E)
    in_tree = torch.zeros(len(E), dtype=torch.bool)
    in_tree[0] = True
    for _ in range(len(E) - 1):  # the nearest class outside the tree joins it, one hop beyond its parent
        candidates = E.masked_fill(~in_tree[:, None] | in_tree[None, :], float("inf"))
        parent, child = divmod(int(candidates.argmin()), len(E))
        hops[child, in_tree] = hops[parent, in_tree] + 1
        hops[in_tree, child] = hops[child, in_tree]
        in_tree[child] = True
    distance = torch.ones(C, C, dtype=torch.float64).fill_diagonal_(0.0)
    distance[seen.nonzero()[:, 0, None], seen.nonzero()[:, 0]] = hops / (C - 1)
    return distance


LEARNED_DISTANCE_FUNCTIONS = {"rank": rank_distance, "tree": tree_distance}


class GroundDistanceLearner:
    """A ground distance learned from the features that feed the classifier (Hou et al. section on
    learning the matrix; the schedule of the MilesGrey/emd reproduction):

    - `observe(features [B, F], labels [B])` every training step: features are L2-normalised per
      sample (our choice; the reproduction divides by their sum) and summed per class;
    - `end_epoch()` after every epoch: class centroids (the epoch's mean; with `momentum` m > 0
      an exponential moving average c <- m c + (1 - m) epoch mean, our choice against the noise of
      rare classes; a class absent this epoch keeps its last centroid) -> `matrix` =
      rank_distance (`distance="rank"`, the reproduction) or tree_distance ("tree") of them;
    - the loss is cross entropy alone for `warmup_epochs` epochs; during the last of them
      `record(ce, emd)` collects both terms' batch means, and at its end
      weight = mean(ce) / mean(emd) / balance (the reproduction: 4 epochs, balance 3.5);
      from then on loss = ce + weight * emd.

    Under torch.distributed the epoch's sums are all-reduced, so every rank gets the same matrix.
    `state_dict()` / `load_state_dict()`: tensors and numbers only (checkpoints load weights_only).
    """

    def __init__(self, classes: int, warmup_epochs: int = 4, balance: float = 3.5, distance: str = "rank",
                 momentum: float = 0.0):
        if classes < 2:
            raise ValueError(f"a learned ground distance needs >= 2 classes, got {classes}")
        if warmup_epochs < 2:
            raise ValueError(f"warmup_epochs must be >= 2 (a matrix from the first epoch must exist "
                             f"to size the EMD term in the last warm-up epoch), got {warmup_epochs}")
        if balance <= 0:
            raise ValueError(f"balance must be > 0, got {balance}")
        if distance not in LEARNED_DISTANCES:
            raise ValueError(f"learned_distance={distance!r} is not one of {', '.join(LEARNED_DISTANCES)}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"centroid_momentum must be in [0, 1), got {momentum}")
        self.distance, self.momentum = distance, float(momentum)
        self.classes, self.warmup_epochs, self.balance = classes, warmup_epochs, float(balance)
        self.epoch = 0  # epochs completed
        self.weight = 0.0  # of the EMD term; 0 during the warm-up
        self.matrix: Tensor | None = None  # [C, C] float64 once an epoch has ended
        self.centroids: Tensor | None = None  # [C, F] float64
        self.distances: Tensor | None = None  # [C, C] float64: between centroids, before ranking
        self.seen = torch.zeros(classes, dtype=torch.bool)
        self._reset()

    def _reset(self) -> None:
        self.sums: Tensor | None = None  # [C, F] float64: this epoch's sums of normalised features
        self.counts = torch.zeros(self.classes, dtype=torch.float64)
        self.recorded = torch.zeros(3, dtype=torch.float64)  # sum of ce, sum of emd, batches

    @property
    def recording(self) -> bool:
        """True during the last warm-up epoch: the two terms' sizes are being measured."""
        return self.epoch == self.warmup_epochs - 1 and self.matrix is not None

    def observe(self, features: Tensor, labels: Tensor) -> None:
        features = torch.nn.functional.normalize(features.detach().double(), dim=1).cpu()
        labels = labels.detach().cpu().long()
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.classes):
            raise ValueError(f"labels must be classes in [0, {self.classes}), got {labels.tolist()}")
        if self.sums is None:
            self.sums = torch.zeros(self.classes, features.shape[1], dtype=torch.float64)
        self.sums.index_add_(0, labels, features)
        self.counts += torch.bincount(labels, minlength=self.classes).double()

    def record(self, ce: Tensor, emd: Tensor) -> None:
        self.recorded += torch.tensor([float(ce), float(emd), 1.0], dtype=torch.float64)

    def end_epoch(self) -> None:
        """Close an epoch: new centroids and matrix; the EMD weight at the end of the warm-up."""
        if self.sums is None:
            raise RuntimeError(f"no features observed in epoch {self.epoch}: the learned ground distance "
                               "needs `observe(features, labels)` every step (a hook on the attribute "
                               "classifier, which a compiled model may skip: train.compile=false)")
        sums, counts, recorded = _all_reduce(self.sums, self.counts, self.recorded)
        present = counts > 0
        if self.centroids is None:
            self.centroids = torch.zeros_like(sums)
        means = sums[present] / counts[present, None]
        keep = torch.where(self.seen[present], self.momentum, 0.0)[:, None]  # a first sighting: its mean
        self.centroids[present] = keep * self.centroids[present] + (1 - keep) * means
        self.seen |= present
        self.distances = centroid_distance(self.centroids, self.seen)
        self.matrix = LEARNED_DISTANCE_FUNCTIONS[self.distance](self.centroids, self.seen)
        if self.epoch == self.warmup_epochs - 1:
            ce, emd, batches = recorded.tolist()
            self.weight = ce / emd / self.balance if batches and emd > 0 else 0.0
        self.epoch += 1
        self._reset()

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "weight": self.weight, "matrix": self.matrix,
                "distances": self.distances, "centroids": self.centroids, "seen": self.seen.clone(),
                "sums": self.sums, "counts": self.counts.clone(), "recorded": self.recorded.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.weight = int(state["epoch"]), float(state["weight"])
        self.matrix, self.centroids, self.sums = state["matrix"], state["centroids"], state["sums"]
        self.distances = state["distances"]
        self.seen, self.counts, self.recorded = state["seen"], state["counts"], state["recorded"]


def _all_reduce(sums: Tensor | None, counts: Tensor, recorded: Tensor):
    """Sum the epoch's accumulators over torch.distributed ranks (no-op in one process)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return sums, counts, recorded
    flat = torch.cat([counts, recorded, sums.flatten()])
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    flat = flat.to(device)
    dist.all_reduce(flat)
    flat = flat.cpu()
    C, n = counts.numel(), recorded.numel()
    return flat[C + n:].view_as(sums), flat[:C], flat[C:C + n]
