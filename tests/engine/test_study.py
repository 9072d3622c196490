"""Loss studies without training: the spec, the statistics (against scipy.stats), tables and plots."""
import json
import math

import numpy as np
import pytest
from scipy import stats

from kpdet.engine.compare import build_study
from kpdet.engine.study.collect import read_history, target_column
from kpdet.engine.study.parallel import plan_workers
from kpdet.engine.study.plots import (
    PCK_GRID,
    pck_curve,
    plot_metric_vs_step,
    plot_pck_curves,
    plot_per_keypoint,
)
from kpdet.engine.study.report import ranking_table, speed_table, write_csv
from kpdet.engine.study.spec import Parallel, StudyError, load_study, parse_losses
from kpdet.engine.study.stats import paired_difference, steps_to_target, summarize

# ---- spec -------------------------------------------------------------------------------------------


def test_losses_string_parses_names_and_yaml_typed_parameters():
    losses = parse_losses("daf, mse,dfl(alpha=2, gamma=1.5), wce(class_weights=[1, 2.5])")
    assert [loss.label for loss in losses] == ["daf", "mse", "dfl(alpha=2,gamma=1.5)",
                                               "wce(class_weights=[1, 2.5])"]
    assert losses[2].as_dict() == {"type": "dfl", "alpha": 2, "gamma": 1.5}
    assert isinstance(losses[2].as_dict()["alpha"], int) and isinstance(losses[2].as_dict()["gamma"], float)
    assert losses[2].folder == "dfl_alpha=2_gamma=1.5"
    assert losses[0].matches("distance_aware_focal") and not losses[2].matches("dual_focal")


def test_a_loss_may_carry_its_own_config_overrides_and_label(tmp_path):
    ordinal = {"type": "squared_emd", "label": "emd_ordinal",
               "overrides": ["model.head=ordinal_xy", "codec.type=ordinal_xy"]}
    prior = {"type": "daf", "overrides": ["model.final_bias=-4.6"]}
    study = load_study(study_file(tmp_path, losses=["mse", ordinal, prior],
                                  datasets={"a": ["train.lr=0.001"]}))
    runs = {r.loss.label: r for r in study.runs() if r.seed == 5}
    assert list(runs) == ["mse", "emd_ordinal", "daf[model.final_bias=-4.6]"]
    # the study's budget, then the dataset's, then the loss's own: only that loss's runs get them
    assert runs["emd_ordinal"].overrides == ("train.epochs=1", "train.lr=0.001", "model.head=ordinal_xy",
                                             "codec.type=ordinal_xy")
    assert runs["mse"].overrides == ("train.epochs=1", "train.lr=0.001")
    assert runs["emd_ordinal"].loss.as_dict() == {"type": "squared_emd"}  # not loss parameters
    assert runs["daf[model.final_bias=-4.6]"].work_dir.endswith("daf_model.final_bias=-4.6/seed5")
    assert not runs["daf[model.final_bias=-4.6]"].loss.matches("daf")  # not the plain loss
    # the command line says the same with overrides=[...]
    assert parse_losses("daf(overrides=[model.final_bias=-4.6])")[0] == study.losses[2]


def test_a_loss_override_reaches_the_run_config(tmp_path):
    from kpdet.engine.study.run import run_config

    ordinal = {"type": "squared_emd", "label": "emd", "overrides": ["model.head=ordinal_xy",
                                                                  "codec={type: ordinal_xy, split: 2}"]}
    run = next(r for r in load_study(study_file(tmp_path, losses=["mse", ordinal])).runs()
               if r.loss.label == "emd")
    cfg = run_config(run)
    assert (cfg.model.head, cfg.codec.type, cfg.loss.type) == ("ordinal_xy", "ordinal_xy", "squared_emd")


@pytest.mark.parametrize("text, message", [("mse,nope", "unknown loss 'nope'"),
                                           ("dfl(alpha=2", "unclosed bracket"),
                                           ("dfl(alpha)", "not key=value")])
def test_bad_losses_string_names_the_problem(text, message):
    with pytest.raises(StudyError, match=message):
        parse_losses(text)


def study_file(tmp_path, **extra):
    body = {"base": "configs/smoke.yaml", "work_dir": str(tmp_path / "study"),
            "datasets": {"a": ["train.lr=0.001"], "b": []}, "losses": ["mse", {"type": "dfl", "alpha": 2}],
            "seeds": 2, "seed": 5, "overrides": ["train.epochs=1"], "targets": {"PCK@0.1": 0.5}, **extra}
    path = tmp_path / "study.yaml"
    path.write_text(json.dumps(body))  # JSON is YAML
    return path


def test_study_file_expands_to_runs_in_their_folders(tmp_path):
    study = load_study(study_file(tmp_path))
    runs = study.runs()
    assert len(runs) == 2 * 2 * 2  # datasets x seeds x losses
    first = runs[0]
    assert (first.dataset, first.loss.label, first.seed) == ("a", "mse", 5)
    assert first.work_dir == str(tmp_path / "study" / "a" / "mse" / "seed5")
    assert first.overrides == ("train.epochs=1", "train.lr=0.001")  # budget, then the dataset's
    assert [r.seed for r in runs[:4]] == [5, 5, 6, 6]  # seed-major: every loss has seed 5 first
    assert study.baseline_label() == "mse"


def test_command_line_overrides_the_study_file(tmp_path):
    overrides = [f"work_dir={tmp_path / 'x'}", "train.lr=0.01"]
    study = build_study(str(study_file(tmp_path)), "daf,mse", 3, overrides, "processes", 2)
    assert [loss.label for loss in study.losses] == ["daf", "mse"] and study.seeds == [5, 6, 7]
    assert study.work_dir == str(tmp_path / "x") and study.overrides[-1] == "train.lr=0.01"
    assert (study.parallel.backend, study.parallel.workers) == ("processes", 2)


def test_plain_config_is_a_one_dataset_study_and_needs_losses(tmp_path):
    study = build_study("configs/smoke.yaml", "mse,focal(gamma=3)", 2, [f"work_dir={tmp_path}", "seed=10"])
    assert [r.name for r in study.runs()] == ["default/mse/seed10", "default/focal(gamma=3)/seed10",
                                              "default/mse/seed11", "default/focal(gamma=3)/seed11"]
    with pytest.raises(StudyError, match="--losses"):
        build_study("configs/smoke.yaml")


@pytest.mark.parametrize("extra, message", [({"lossez": []}, "unknown study keys"),
                                            ({"parallel": {"backend": "mpi"}}, "parallel.backend='mpi'"),
                                            ({"losses": ["mse", "mse"]}, "listed twice")])
def test_bad_study_file_names_the_field(tmp_path, extra, message):
    with pytest.raises(StudyError, match=message):
        load_study(study_file(tmp_path, **extra))


def test_bad_override_in_a_study_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="train.epochz"):
        build_study(str(study_file(tmp_path)), overrides=["train.epochz=3"])


def test_workers_split_the_cpu_threads_or_take_one_gpu_each_or_share_the_gpus():
    assert plan_workers(Parallel(workers=2), gpus=0, cores=16) == (2, 8, [None, None])
    assert plan_workers(Parallel(), gpus=0, cores=16) == (1, 16, [None])
    # packed: 16 cores / 4 GPUs / 2 cores per run = 2 runs per GPU
    assert plan_workers(Parallel(), gpus=4, cores=16) == (8, 2, ["0", "1", "2", "3"] * 2)
    assert plan_workers(Parallel(), gpus=1, cores=16) == (8, 2, ["0"] * 8)  # the cap: 8 per GPU
    assert plan_workers(Parallel(), gpus=1, cores=16, runs=6) == (6, 2, ["0"] * 6)  # no idle worker
    assert plan_workers(Parallel(), gpus=1, cores=2) == (1, 2, ["0"])
    assert plan_workers(Parallel(workers=2, threads=3), gpus=4, cores=16) == (2, 3, ["0", "1"])
    assert plan_workers(Parallel(workers=6), gpus=1, cores=16) == (6, 2, ["0"] * 6)
    assert plan_workers(Parallel(workers=3), gpus=2, cores=12) == (3, 4, ["0", "1", "0"])


# ---- statistics -------------------------------------------------------------------------------------


def test_summary_is_mean_sample_std_and_t_interval():
    # x = 1, 2, 3, 4: mean 2.5, s = sqrt(5/3) = 1.2910, t_{0.975, 3} = 3.1824, half = 3.1824 * 1.2910 / 2
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert (s.n, s.mean, s.std) == (4, 2.5, pytest.approx(math.sqrt(5 / 3)))
    assert s.high - s.mean == pytest.approx(3.182446 * math.sqrt(5 / 3) / 2, rel=1e-6)
    low, high = stats.t.interval(0.95, 3, loc=2.5, scale=stats.sem([1.0, 2.0, 3.0, 4.0]))
    assert (s.low, s.high) == (pytest.approx(float(low)), pytest.approx(float(high)))
    one = summarize([0.7])
    assert one.mean == 0.7 and math.isnan(one.std) and math.isnan(one.low)


def test_paired_difference_pairs_by_seed_and_matches_scipy():
    loss = {0: 0.61, 1: 0.70, 2: 0.66, 3: 0.72, 4: 0.69}
    base = {4: 0.60, 3: 0.65, 2: 0.64, 1: 0.62, 0: 0.60, 9: 0.1}  # seed 9 has no partner: left out
    p = paired_difference(loss, base)
    # d = 0.01, 0.08, 0.02, 0.07, 0.09: mean 0.054
    assert p.n == 5 and p.diff.mean == pytest.approx(0.054)
    x, b = [loss[s] for s in range(5)], [base[s] for s in range(5)]
    assert p.p_t == pytest.approx(float(stats.ttest_rel(x, b).pvalue))
    assert p.p_wilcoxon == pytest.approx(float(stats.wilcoxon(x, b).pvalue))
    assert p.p_wilcoxon == pytest.approx(2 / 32)  # all 5 differences positive: exact two-sided 2 * 2^-5


def test_paired_difference_of_identical_losses_has_no_wilcoxon_p():
    p = paired_difference({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6})
    assert p.diff.mean == 0.0 and math.isnan(p.p_wilcoxon)


def test_steps_to_target_is_the_first_validation_reaching_it():
    history = [{"step": 10, "PCK@0.1": 0.2, "EPE": 9.0}, {"step": 20, "PCK@0.1": 0.55, "EPE": 4.0},
               {"step": 30, "PCK@0.1": 0.5, "EPE": 5.0}]
    assert steps_to_target(history, "PCK@0.1", 0.5) == 20.0
    assert steps_to_target(history, "EPE", 5.0) == 20.0  # lower is better: first EPE <= 5
    assert math.isnan(steps_to_target(history, "PCK@0.1", 0.9))
    assert target_column("EPE", 5.0) == "steps_to_EPE<=5"
    assert target_column("PCK@0.1", 0.5) == "steps_to_PCK@0.1>=0.5"


def rows_known():
    # PCK@0.1 per seed: mse 0.5, 0.6, 0.7; daf 0.6, 0.8, 0.7 -> daf - mse = 0.1, 0.2, 0.0 (mean 0.1)
    out = []
    for loss, values in (("mse", (0.5, 0.6, 0.7)), ("daf", (0.6, 0.8, 0.7))):
        for seed, v in enumerate(values):
            steps = [math.nan, 20.0, 30.0][seed] if loss == "mse" else 10.0
            out.append({"dataset": "d", "loss": loss, "seed": seed, "PCK@0.1": v, "EPE": 10 * (1 - v),
                        "EPE/nose": 1.0 + seed, "EPE/eye": 2.0, "steps_to_PCK@0.1>=0.65": steps,
                        "wall_s": 60.0, "images_per_s": 4.0})
    return out


def test_ranking_table_ranks_and_reports_the_paired_tests():
    table = ranking_table(rows_known(), "PCK@0.1", "mse")
    lines = table.splitlines()
    assert "p paired t" in lines[0] and "p Wilcoxon" in lines[0]
    daf, mse = lines[2].split(" | "), lines[3].split(" | ")
    assert daf[1] == "daf" and mse[1] == "mse"  # ranked: daf mean 0.7 > mse mean 0.6
    assert daf[3] == "0.700 ± 0.100"
    p_t = float(stats.ttest_rel([0.6, 0.8, 0.7], [0.5, 0.6, 0.7]).pvalue)  # t = 0.1 / (0.1 / sqrt 3) = 1.732
    assert daf[5].startswith("+0.100") and daf[6] == f"{p_t:.3f}" == "0.225"
    assert daf[7].rstrip(" |") == f"{float(stats.wilcoxon([0.6, 0.8, 0.7], [0.5, 0.6, 0.7]).pvalue):.3f}"
    epe = ranking_table(rows_known(), "EPE", "mse").splitlines()
    assert epe[2].split(" | ")[1] == "daf"  # lower EPE ranks first


def test_speed_table_counts_the_seeds_that_reached_the_target():
    table = speed_table(rows_known(), {"PCK@0.1": 0.65})
    assert "| mse | 25 (2/3) | 60.0 | 4.0 |" in table and "| daf | 10 (3/3) |" in table


def test_csv_has_one_row_per_run_identity_columns_first(tmp_path):
    write_csv(rows_known(), tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert len(lines) == 7 and lines[0].startswith("dataset,loss,loss_type,params,overrides,seed,EPE,PCK@0.1")


# ---- plots ------------------------------------------------------------------------------------------


def test_pck_curve_from_predictions_counts_keypoints_within_each_threshold():
    # one instance, box 100 px: errors 0, 3 and 12 px -> PCK 1/3 at t=0, 2/3 at 0.03..0.11, 1 from 0.12
    gt = np.array([[[10, 10, 2], [20, 20, 2], [30, 30, 2], [0, 0, 0]]], dtype=float)
    keypoints = gt[..., :2] + np.array([[[0, 0], [3, 0], [12, 0], [50, 50]]])
    curve = pck_curve({"keypoints": keypoints, "gt": gt, "bbox": np.array([[0, 0, 100, 60]])})
    assert len(curve) == len(PCK_GRID) == 31
    expected = [1 / 3 if t < 0.03 else 2 / 3 if t < 0.12 else 1.0 for t in PCK_GRID]
    np.testing.assert_allclose(curve, expected)


def test_plots_are_written_with_one_curve_per_loss(tmp_path):
    curves = {"mse": [np.linspace(0, 1, 31), np.linspace(0, 0.8, 31)], "daf": [np.linspace(0, 0.9, 31)]}
    drawn = plot_pck_curves(curves, tmp_path / "pck.png")
    assert set(drawn) == {"mse", "daf"}
    np.testing.assert_allclose(drawn["mse"][-1], 0.9)  # mean of 1.0 and 0.8 at the last threshold
    histories = {"mse": [[{"step": 5, "PCK@0.1": 0.2}, {"step": 10, "PCK@0.1": 0.4}],
                         [{"step": 5, "PCK@0.1": 0.4}, {"step": 10, "PCK@0.1": 0.6},
                          {"step": 15, "PCK@0.1": 0.9}]]}
    steps = plot_metric_vs_step(histories, "PCK@0.1", tmp_path / "steps.png")
    np.testing.assert_array_equal(steps["mse"][0], [5, 10])  # only steps that both seeds validated
    np.testing.assert_allclose(steps["mse"][1], [0.3, 0.5])
    keypoints = plot_per_keypoint(rows_known(), tmp_path / "kp.png")
    assert keypoints["mse"] == {"nose": 2.0, "eye": 2.0}  # nose: mean of 1, 2, 3
    for name in ("pck.png", "steps.png", "kp.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_history_keeps_the_last_entry_of_a_repeated_step(tmp_path):
    lines = ['{"step": 2, "EPE": 9}', '{"step": 4, "EPE": 7}', '{"step": 4, "EPE": 6}']
    (tmp_path / "history.jsonl").write_text("\n".join(lines) + "\n")
    assert read_history(tmp_path) == [{"step": 2, "EPE": 9}, {"step": 4, "EPE": 6}]


def test_shipped_study_runs_every_heatmap_loss_of_the_contract_on_three_seeds():
    from kpdet.config import load_config
    from kpdet.losses import LOSSES

    study = load_study("configs/studies/synthetic_all_losses.yaml")
    contract = {"distance_aware_focal", "mse", "ce", "wce", "dce", "focal", "dual_focal", "dice",
                "generalized_dice", "pointwise_exponential", "adaptive_wing", "ohkm_mse"}
    assert {LOSSES.canonical(loss.type) for loss in study.losses} == contract
    assert study.seeds == [0, 1, 2] and study.baseline_label() == "mse" and len(study.runs()) == 36
    cfg = load_config(study.base, study.overrides)  # every budget key exists in the schema
    assert (cfg.train.max_iters_per_epoch, cfg.train.val_every_steps) == (64, 16)


def test_ordinal_study_shares_the_all_losses_runs_and_trains_the_shipped_ordinal_head():
    from kpdet.config import load_config

    everything, ordinal = (load_study(f"configs/studies/{name}.yaml") for name in ("synthetic_all_losses",
                                                                                  "synthetic_ordinal"))
    shared = {r.name: r for r in everything.runs()}
    for run in ordinal.runs():
        if run.name in shared:  # mse and daf: the very same run (folder and config), trained once
            twin = shared[run.name]
            assert (run.work_dir, run.overrides, run.base) == (twin.work_dir, twin.overrides, twin.base)
    assert sum(r.name not in shared for r in ordinal.runs()) == 6  # 2 ordinal losses x 3 seeds
    emd = next(run for run in ordinal.runs() if run.loss.label == "emd_ordinal")
    emd_cfg = load_config(ordinal.base, list(emd.overrides))
    shipped = load_config("configs/synthetic/emd_ordinal.yaml")  # the shipped head and codec
    assert (emd_cfg.model.head, dict(emd_cfg.codec)) == (shipped.model.head, dict(shipped.codec))


@pytest.mark.parametrize("name, base, steps", [("openfield_focal_vs_mse", "configs/openfield/focal.yaml", 80),
                                              ("synthetic_focal_vs_mse", "configs/synthetic/focal.yaml", 1)])
def test_focal_studies_train_the_shipped_focal_config_against_mse_at_its_own_budget(name, base, steps):
    from kpdet.config import load_config

    study = load_study(f"configs/studies/{name}.yaml")
    assert study.base == base and study.seeds == [0, 1, 2] and study.baseline_label() == "mse"
    plain = [loss.as_dict() for loss in study.losses if not loss.overrides]
    assert plain == [{"type": "mse"}, {"type": "distance_aware_focal"}]  # daf as shipped, against mse
    cfg = load_config(study.base, study.overrides)
    shipped = load_config(base)
    assert cfg.train.epochs == shipped.train.epochs == steps  # the shipped budget, not a shorter one
    assert cfg.model.final_bias is None  # daf trains with its own prior (the recipe)


def test_a_run_folder_written_under_another_config_is_not_reused(tmp_path):
    from kpdet.config import save_config
    from kpdet.engine.study.run import check_same_config, run_config

    run = build_study("configs/smoke.yaml", "mse", 1, [f"work_dir={tmp_path}"]).runs()[0]
    save_config(run_config(run), tmp_path / "config.yaml")
    check_same_config(run_config(run), tmp_path / "config.yaml")  # the same: fine
    longer = build_study("configs/smoke.yaml", "mse", 1, [f"work_dir={tmp_path}", "train.epochs=3"]).runs()[0]
    with pytest.raises(StudyError, match=r"train.epochs: 1 -> 3.*delete"):
        check_same_config(run_config(longer), tmp_path / "config.yaml")


@pytest.mark.parametrize("name, twin, new_runs", [("synthetic_backbones", "synthetic_all_losses", 6),
                                                  ("openfield_backbones", "openfield_focal_vs_mse", 6),
                                                  ("openfield_pose_losses", "openfield_focal_vs_mse", 6),
                                                  ("synthetic_pose_losses", "synthetic_all_losses", 0),
                                                  ("openfield_offset", "openfield_focal_vs_mse", 6),
                                                  ("openfield_pretraining", "openfield_focal_vs_mse", 15)])
def test_backbone_pose_loss_and_pretraining_studies_reuse_their_twins_runs(name, twin, new_runs):
    from kpdet.config import load_config

    study, reference = load_study(f"configs/studies/{name}.yaml"), load_study(f"configs/studies/{twin}.yaml")
    shared = {r.name: r for r in reference.runs()}
    for run in study.runs():
        if run.name in shared:  # the ResNet-18 mse and daf runs: the very same folder and config
            twin_run = shared[run.name]
            assert (run.work_dir, run.overrides, run.base) == (twin_run.work_dir, twin_run.overrides,
                                                               twin_run.base)
    assert sum(r.name not in shared for r in study.runs()) == new_runs and study.baseline_label() == "mse"
    for run in study.runs():
        cfg = load_config(study.base, [*run.overrides, f"loss.type={run.loss.type}"])
        assert cfg.model.backbone == ("hrnet_w18_small" if "hrnet" in run.loss.label else "resnet18")
        budget = run.loss.label.split("_")[0].removeprefix("synthetic")  # synthetic5_mse -> 5
        if "_n" in run.loss.label:  # synthetic1_n10000_mse -> 1:10000
            budget += ":" + run.loss.label.split("_")[1].removeprefix("n")
        assert cfg.model.pretrained == (f"synthetic:{budget}" if "synthetic" in run.loss.label else None)
        assert cfg.model.offset == ("offset" in run.loss.label)
        if run.loss.type == "ohkm_mse" and name.startswith("openfield"):  # 4 keypoints: OHKM mines 2
            # (8, CPN's count, would be plain mse)
            assert dict(run.loss.params) == {"topk": 2}


def test_baseline_from_the_command_line_pairs_against_another_loss():
    study = build_study("configs/studies/synthetic_backbones.yaml", baseline="distance_aware_focal")
    assert study.baseline_label() == "distance_aware_focal"
    with pytest.raises(StudyError, match="--baseline nope: no such loss.*hrnet_w18_small_mse"):
        build_study("configs/studies/synthetic_backbones.yaml", baseline="nope")


def test_a_synthetic_pretrained_run_folder_is_reused_by_its_own_study(tmp_path, monkeypatch):
    # fit saves model.pretrained resolved (the cached trunk's path); the study plans "synthetic:1":
    # the same run, so a rerun or a resumed study must accept its folder (it raised before)
    from omegaconf import OmegaConf

    from kpdet.config import save_config
    from kpdet.engine.pretrain import trunk_file
    from kpdet.engine.study.run import check_same_config, run_config

    monkeypatch.setenv("KPDET_CACHE", str(tmp_path / "cache"))
    run = build_study("configs/smoke.yaml", "mse", 1, [f"work_dir={tmp_path}",
                                                       "model.pretrained=synthetic:1"]).runs()[0]
    saved = run_config(run)
    OmegaConf.update(saved, "model.pretrained", str(trunk_file(tmp_path / "cache", "resnet18", 1)))
    save_config(saved, tmp_path / "config.yaml")
    check_same_config(run_config(run), tmp_path / "config.yaml")
    longer = build_study("configs/smoke.yaml", "mse", 1, [f"work_dir={tmp_path}",
                                                          "model.pretrained=synthetic:5"])
    with pytest.raises(StudyError, match=r"model.pretrained: .*_e1_s0.pt' -> .*_e5_s0.pt'"):
        check_same_config(run_config(longer.runs()[0]), tmp_path / "config.yaml")


@pytest.mark.parametrize("name, focal, mse, budget", [
    ("openfield_whole_frame", "openfield/focal_whole_frame", "openfield/mse_whole_frame", {}),
    ("points_focal_vs_mse", "points/focal", "points/mse", {}),
    ("bottom_up_synthetic_focal_vs_mse", "bottom_up/synthetic_focal", "bottom_up/synthetic_mse", {}),
    ("synthetic_top_down_10_epochs", "synthetic/focal", "synthetic/mse", {"epochs": 10})])
def test_issue_24_studies_train_the_shipped_focal_and_mse_recipes(name, focal, mse, budget):
    # each run is its shipped config, L1 weights included (MSE's 0.002, not focal's 1), but for the
    # run's folder, seed, the validation cadence and (the top-down reference) the epochs
    from omegaconf import OmegaConf

    from kpdet.config import load_config
    from kpdet.engine.study.run import run_config
    from kpdet.losses import LOSSES

    study = load_study(f"configs/studies/{name}.yaml")
    assert study.seeds == [0, 1, 2] and study.baseline_label() == "mse"
    assert sorted(LOSSES.canonical(loss.type) for loss in study.losses) == ["distance_aware_focal", "mse"]

    def recipe(cfg):
        plain = OmegaConf.to_container(cfg, resolve=True)
        for key in ("work_dir", "seed", "resume", "loss"):
            plain.pop(key)
        plain["train"].pop("val_every_steps")
        return plain

    for run in study.runs():
        cfg = run_config(run)
        shipped = load_config(focal if LOSSES.canonical(run.loss.type) == "distance_aware_focal" else mse,
                              [f"train.{key}={value}" for key, value in budget.items()])
        assert LOSSES.canonical(cfg.loss.type) == LOSSES.canonical(shipped.loss.type)
        assert recipe(cfg) == recipe(shipped), run.name
        assert cfg.train.val_every_steps and cfg.work_dir.startswith(f"work_dirs/studies/{name}/")


def test_whole_frame_pretrained_study_reuses_the_scratch_runs_and_only_adds_the_trunk():
    from kpdet.engine.study.run import run_config

    scratch = {r.name: r for r in load_study("configs/studies/openfield_whole_frame.yaml").runs()}
    study = load_study("configs/studies/openfield_whole_frame_pretrained.yaml")
    added = [run for run in study.runs() if run.name not in scratch]
    assert len(added) == 6 and {run.loss.label for run in added} == {"synthetic5_daf", "synthetic5_mse"}
    for run in study.runs():
        if run.name in scratch:  # the very same folder and config: trained once
            twin = scratch[run.name]
            assert (run.work_dir, run.overrides, run.base) == (twin.work_dir, twin.overrides, twin.base)
            continue
        cfg = run_config(run)
        same_loss = next(r for r in scratch.values() if r.loss.type == run.loss.type and r.seed == run.seed)
        reference = run_config(same_loss)
        assert cfg.model.pretrained == "synthetic:5" and reference.model.pretrained is None
        reference.model.pretrained, reference.work_dir = cfg.model.pretrained, cfg.work_dir
        assert cfg == reference, run.name
