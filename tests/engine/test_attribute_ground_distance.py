"""The attribute head's ground distance from config to checkpoint: model.attribute.loss /
ground_distance / matrix / class_permutation, the learned matrix fed by the training step,
recomputed every epoch, logged as an image, stored in last.pt and resumed exactly."""
import json

import numpy as np
import pytest
import torch

from kpdet.build import build_loss_from_cfg
from kpdet.config import ConfigError, load_config
from kpdet.engine import builders, runner
from kpdet.losses.ordinal import BinCrossEntropyLoss, SquaredEMDLoss
from tests.conftest import data_overrides

ATTRIBUTE = "model.attribute={field: occlusion_bin, classes: 4}"
HIDDEN = "model.attribute.class_permutation=[2,0,3,1]"
# |i - j| in the true order written in the permuted labels: true a is label perm[a], so
# D[l, m] = |inverse[l] - inverse[m]| with inverse = [1, 3, 0, 2]
HIDDEN_LINE = [[0, 2, 1, 1], [2, 0, 3, 1], [1, 3, 0, 2], [1, 1, 2, 0]]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def smoke(*extra):
    return load_config("configs/smoke.yaml", [ATTRIBUTE, *extra])


def test_attribute_loss_from_config(tmp_path):
    ce = build_loss_from_cfg(smoke("model.attribute.loss=bin_ce")).attribute
    assert isinstance(ce, BinCrossEntropyLoss)
    np.save(tmp_path / "d.npy", np.array(HIDDEN_LINE, dtype=float))
    for matrix in (str(HIDDEN_LINE).replace(" ", ""), str(tmp_path / "d.npy")):
        cfg = smoke("model.attribute.ground_distance=matrix", f"model.attribute.matrix={matrix}",
                    "model.attribute.bias=0.5")
        loss = build_loss_from_cfg(cfg).attribute
        assert isinstance(loss, SquaredEMDLoss) and loss.matrix.tolist() == HIDDEN_LINE and loss.bias == 0.5
    learned = build_loss_from_cfg(smoke("model.attribute.ground_distance=learned",
                                        "model.attribute.warmup_epochs=3"))
    assert learned.learner is learned.attribute.learner and learned.learner.warmup_epochs == 3
    assert (learned.learner.distance, learned.learner.momentum) == ("rank", 0.0)  # the reproduction's
    tree = build_loss_from_cfg(smoke("model.attribute.ground_distance=learned",
                                     "model.attribute.learned_distance=tree",
                                     "model.attribute.centroid_momentum=0.5")).learner
    assert (tree.distance, tree.momentum) == ("tree", 0.5)
    assert build_loss_from_cfg(smoke()).learner is None


@pytest.mark.parametrize("overrides, message", [
    (["model.attribute.ground_distance=hamming"], "not one of ordinal, matrix, learned"),
    (["model.attribute.ground_distance=matrix"], "model.attribute.matrix is set exactly when"),
    (["model.attribute.matrix=[[0,1],[1,0]]"], "model.attribute.matrix is set exactly when"),
    (["model.attribute.loss=bin_ce", "model.attribute.ground_distance=learned"], "is squared_emd's"),
    (["model.attribute.learned_distance=mst"], "learned_distance='mst' is not one of rank, tree"),
    (["model.attribute.centroid_momentum=1.0"], r"centroid_momentum=1.0 is not in \[0, 1\)"),
    (["model.attribute.class_permutation=[0,1,1,2]"], r"not a permutation of 0..3"),
    (["model.attribute.class_permutation=[0,1,2]"], r"not a permutation of 0..3"),
])
def test_bad_attribute_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        smoke(*overrides)


def test_bad_matrix_and_learned_keypoint_loss_are_refused():
    bad = smoke("model.attribute.ground_distance=matrix", "model.attribute.matrix=[[0,1,1,1],[1,0,1,1],"
                "[1,1,0,1],[1,1,2,0]]")
    with pytest.raises(ValueError, match=r"model.attribute: matrix: entry \(2, 3\) = 1 is not symmetric"):
        build_loss_from_cfg(bad)
    learned = "loss={type: squared_emd, ground_distance: learned, classes: 4}"
    keypoints = load_config("configs/smoke.yaml", ["model.head=ordinal_xy", "codec.type=ordinal_xy", learned])
    with pytest.raises(ValueError, match="model.attribute.ground_distance=learned"):
        build_loss_from_cfg(keypoints)


def test_permutation_relabels_the_classes_read_from_the_field(tiny_synthetic):
    cfg = smoke(*data_overrides(tiny_synthetic), HIDDEN)
    hidden = builders.build_split(cfg, "val", train=False)
    plain = builders.build_split(smoke(*data_overrides(tiny_synthetic)), "val", train=False)
    assert hidden.attribute_permutation == (2, 0, 3, 1)
    field = [ann["occlusion_bin"] for ann, _ in plain.samples]
    assert [int(plain[i]["attribute"]) for i in range(len(plain))] == field
    assert [int(hidden[i]["attribute"]) for i in range(len(hidden))] == [[2, 0, 3, 1][c] for c in field]


LEARNED = ["model.attribute.ground_distance=learned", "model.attribute.warmup_epochs=2", HIDDEN,
           "model.attribute.learned_distance=tree", "model.attribute.centroid_momentum=0.5",
           "train.epochs=3", "train.max_iters_per_epoch=2", "eval.vis_images=0", "train.val_interval=10"]


@pytest.fixture(scope="module")
def learned_run(tiny_synthetic, tmp_path_factory):
    work = tmp_path_factory.mktemp("learned")
    cfg = load_config("configs/smoke.yaml", [ATTRIBUTE, *data_overrides(tiny_synthetic), f"work_dir={work}",
                                             *LEARNED])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the resumed run below (module fixtures start before `one_thread`)
    try:
        return work, runner.fit(cfg)
    finally:
        torch.set_num_threads(threads)


def test_learned_matrix_is_trained_logged_and_stored(learned_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work, metrics = learned_run
    state = torch.load(work / "last.pt", weights_only=True)["ground_distance"]
    assert state["epoch"] == 3 and state["weight"] > 0  # the EMD term is on after 2 warm-up epochs
    matrix = state["matrix"]
    assert matrix.shape == (4, 4) and torch.equal(matrix, matrix.T) and (torch.diag(matrix) == 0).all()
    # rank matrix: off-diagonal values are (rank + rank') / 6 with ranks in 1..3
    assert set((matrix * 6).round().long().flatten().tolist()) <= set(range(7))
    assert -1 <= metrics["ground_distance_spearman"] <= 1 and "centroid_distance_spearman" in metrics
    tags = EventAccumulator(str(work / "tb")).Reload().Tags()
    assert any("ground_distance" in tag for tag in tags["images"]), tags["images"]
    assert "ground_distance/weight" in tags["scalars"]
    assert json.loads((work / "metrics.json").read_text())["ground_distance_spearman"] == \
        metrics["ground_distance_spearman"]


def test_learned_matrix_resumes_exactly(learned_run, tiny_synthetic, tmp_path, monkeypatch):
    original = runner.train_one_epoch

    def die_in_epoch_2(*args, **kwargs):
        if args[8] == 2:  # epoch index: the run stops after epoch 2's checkpoint (warm-up over)
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    cfg = load_config("configs/smoke.yaml", [ATTRIBUTE, *data_overrides(tiny_synthetic),
                                             f"work_dir={tmp_path}", *LEARNED, "resume=auto"])
    monkeypatch.setattr(runner, "train_one_epoch", die_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        runner.fit(cfg)
    monkeypatch.setattr(runner, "train_one_epoch", original)
    metrics = runner.fit(cfg)
    work, reference = learned_run
    a = torch.load(tmp_path / "last.pt", weights_only=True)
    b = torch.load(work / "last.pt", weights_only=True)
    for key in ("matrix", "centroids", "distances"):
        assert torch.equal(a["ground_distance"][key], b["ground_distance"][key]), key
    assert a["ground_distance"]["weight"] == b["ground_distance"]["weight"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert metrics == reference


def test_the_study_compares_four_attribute_losses_on_the_hidden_order():
    from kpdet.engine.study.run import run_config
    from kpdet.engine.study.spec import load_study
    from kpdet.metrics import ground_distance_spearman

    study = load_study("configs/studies/synthetic_attribute_ground_distance.yaml")
    runs = {run.loss.label: run_config(run) for run in study.runs() if run.seed == 0}
    assert list(runs) == ["ce", "emd_ordinal", "emd_matrix", "emd_learned", "emd_learned_tree"]
    assert study.baseline_label() == "ce"
    attribute = {label: cfg.model.attribute for label, cfg in runs.items()}
    assert attribute["ce"].loss == "bin_ce" and attribute["emd_learned"].ground_distance == "learned"
    assert attribute["emd_ordinal"].class_permutation is None  # the order given
    tree = attribute["emd_learned_tree"]
    assert (tree.ground_distance, tree.learned_distance, tree.centroid_momentum) == ("learned", "tree", 0.5)
    for label in ("ce", "emd_matrix", "emd_learned", "emd_learned_tree"):
        assert list(attribute[label].class_permutation) == [2, 0, 3, 1]
    matrix = attribute["emd_matrix"].matrix
    assert [list(row) for row in matrix] == HIDDEN_LINE
    perm = [2, 0, 3, 1]  # true classes a, b are labels perm[a], perm[b]: their distance must be |a - b|
    assert all(HIDDEN_LINE[perm[a]][perm[b]] == abs(a - b) for a in range(4) for b in range(4))
    assert ground_distance_spearman(np.array(HIDDEN_LINE), perm) == pytest.approx(1.0)
    assert {cfg.loss.type for cfg in runs.values()} == {"distance_aware_focal"}  # the keypoint loss is shared


def test_learned_matrix_resumes_exactly_from_the_middle_of_an_epoch(learned_run, tiny_synthetic, tmp_path,
                                                                    monkeypatch):
    """A preemption checkpoint mid-epoch carries the epoch's partial centroid sums (2 steps per epoch:
    step 5 is the first batch of the third epoch, after the warm-up)."""
    import signal

    from kpdet.engine import preempt
    from tests.engine.test_preempt import signal_at_step

    cfg = load_config("configs/smoke.yaml", [ATTRIBUTE, *data_overrides(tiny_synthetic),
                                             f"work_dir={tmp_path}", *LEARNED, "resume=auto"])
    signal_at_step(monkeypatch, signal.SIGTERM, at=5)
    with pytest.raises(preempt.Interrupted):
        runner.fit(cfg)
    partial = torch.load(tmp_path / "last.pt", weights_only=True)["ground_distance"]
    assert partial["epoch"] == 2 and partial["counts"].sum() == 8  # one batch of 8 crops observed
    monkeypatch.undo()
    metrics = runner.fit(cfg)
    work, reference = learned_run
    a = torch.load(tmp_path / "last.pt", weights_only=True)["ground_distance"]
    b = torch.load(work / "last.pt", weights_only=True)["ground_distance"]
    assert torch.equal(a["matrix"], b["matrix"]) and torch.equal(a["centroids"], b["centroids"])
    assert metrics == reference
