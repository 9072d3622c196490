"""Loss studies that train (a step or two each): fairness, resume, --report, parallel backends."""
import csv
import json

import pytest
import torch

import kpdet.engine.runner as runner
from kpdet.engine.compare import run_study
from kpdet.engine.study.run import run_config
from kpdet.engine.study.spec import Parallel, RunSpec, Study, make_loss
from tests.conftest import data_overrides

BUDGET = ("train.max_iters_per_epoch=1", "eval.vis_images=0", "train.log_interval=1")


class Stop(Exception):
    pass


def first_epoch(tiny, tmp_path, loss: str, seed: int, monkeypatch) -> tuple[dict, dict]:
    """Run the real `fit` of a study run up to its first training step: (initial weights, first batch)."""
    seen = {}

    def capture(model, loss_fn, codec, loader, *args, **kwargs):
        seen["weights"] = {k: v.clone() for k, v in model.state_dict().items()}
        seen["batch"] = next(iter(loader))
        raise Stop

    monkeypatch.setattr(runner, "train_one_epoch", capture)
    run = RunSpec("configs/smoke.yaml", (*data_overrides(tiny), *BUDGET), make_loss(loss, "test"), "d", seed,
                  str(tmp_path / loss / f"seed{seed}"))
    with pytest.raises(Stop):
        runner.fit(run_config(run))
    return seen["weights"], seen["batch"]


def test_every_loss_of_a_seed_starts_from_the_same_weights_and_batches(tiny_synthetic, tmp_path, monkeypatch):
    daf_w, daf_b = first_epoch(tiny_synthetic, tmp_path, "daf", 0, monkeypatch)
    mse_w, mse_b = first_epoch(tiny_synthetic, tmp_path, "mse", 0, monkeypatch)
    focal_w, _ = first_epoch(tiny_synthetic, tmp_path, "focal", 0, monkeypatch)
    other_w, other_b = first_epoch(tiny_synthetic, tmp_path, "mse", 1, monkeypatch)
    (bias,) = [k for k in daf_w if k.endswith("final.bias")]
    # Only the final bias differs: logit of the loss's prior (model.final_bias: null), p = 0.1 for the
    # sigmoid losses (-log 9 = -2.197), 0 for mse's linear output.
    for key in daf_w:
        if key != bias:
            torch.testing.assert_close(daf_w[key], mse_w[key], rtol=0, atol=0, msg=key)
            assert torch.equal(daf_w[key], focal_w[key]), key
    torch.testing.assert_close(daf_w[bias], torch.full_like(daf_w[bias], -2.1972), atol=1e-4, rtol=0)
    torch.testing.assert_close(focal_w[bias], torch.full_like(focal_w[bias], -2.1972), atol=1e-4, rtol=0)
    assert torch.all(mse_w[bias] == 0)
    for key in ("image", "keypoints", "visible", "ann_id"):  # same order, same augmentation
        assert torch.equal(daf_b[key], mse_b[key]), key
    # another seed: other weights and another order (the test would pass vacuously otherwise)
    assert not all(torch.equal(mse_w[k], other_w[k]) for k in mse_w)
    assert not torch.equal(mse_b["image"], other_b["image"])


def make_study(tiny, tmp_path, losses=("mse", "focal"), seeds=(0,), **parallel) -> Study:
    return Study(base="configs/smoke.yaml", work_dir=str(tmp_path / "study"),
                 losses=[make_loss(name, "test") for name in losses], seeds=list(seeds),
                 datasets={"tiny": list(data_overrides(tiny))},
                 overrides=[*BUDGET, "train.epochs=2"], targets={"PCK@0.2": 0.0},
                 parallel=Parallel(**parallel))


@pytest.mark.slow
def test_an_interrupted_study_resumes_without_redoing_finished_runs(tiny_synthetic, tmp_path, monkeypatch):
    calls = []
    real = runner.train_one_epoch

    def interrupting(model, loss_fn, codec, loader, optimizer, scheduler, scaler, device, epoch, *args, **kw):
        calls.append((type(loss_fn).__name__, epoch))
        if type(loss_fn).__name__ != "MSELoss" and epoch == 1 and not interrupting.resumed:
            raise KeyboardInterrupt  # killed during focal's second epoch: last.pt holds epoch 1
        return real(model, loss_fn, codec, loader, optimizer, scheduler, scaler, device, epoch, *args, **kw)

    interrupting.resumed = False
    monkeypatch.setattr(runner, "train_one_epoch", interrupting)
    study = make_study(tiny_synthetic, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_study(study)
    mse_dir, focal_dir = (tmp_path / "study" / "tiny" / name / "seed0" for name in ("mse", "focal"))
    finished = (mse_dir / "metrics.json").stat().st_mtime_ns
    assert not (focal_dir / "metrics.json").exists() and (focal_dir / "last.pt").exists()
    names = {n for n, _ in calls}
    assert len(names) == 2, calls
    before = torch.load(focal_dir / "last.pt", weights_only=True)["state"]["seconds"]
    assert before > 0  # the interrupted session's wall time, kept for the resumed run's total
    focal_name = (names - {"MSELoss"}).pop()

    calls.clear()
    interrupting.resumed = True
    rows = run_study(study)
    assert calls == [(focal_name, 1)]  # mse skipped; focal resumed at its second epoch only
    total = torch.load(focal_dir / "last.pt", weights_only=True)["state"]["seconds"]
    assert total > before  # both sessions' wall time, and the results table reports it
    assert json.loads((focal_dir / "run_info.json").read_text())["wall_s"] == pytest.approx(total, abs=0.5)
    assert (mse_dir / "metrics.json").stat().st_mtime_ns == finished
    history = (focal_dir / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in history] == [1, 2]
    assert sorted(r["loss"] for r in rows) == ["focal", "mse"]
    assert (mse_dir / "tb" / "hparams").is_dir()  # HParams entry of a study run
    assert all(r["steps"] == 2 and r["steps_to_PCK@0.2>=0"] == 1.0 for r in rows)

    calls.clear()
    (tmp_path / "study" / "results.md").unlink()
    run_study(study, train=False)  # --report: tables and plots again, no training
    assert calls == [] and "| rank | loss |" in (tmp_path / "study" / "results.md").read_text()
    with open(tmp_path / "study" / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["dataset"], r["seed"]) for r in table] == [("tiny", "0"), ("tiny", "0")]
    assert {"AP", "PCK@0.1", "EPE", "wall_s", "images_per_s", "PCK@0.1/nose"} <= set(table[0])
    assert all((tmp_path / "study" / f"tiny_{p}.png").stat().st_size > 5000
               for p in ("pck_curve", "PCK_at_0.1_vs_step", "per_keypoint_epe"))


@pytest.mark.slow
def test_process_workers_and_submitit_local_jobs_fill_the_same_study(tiny_synthetic, tmp_path):
    pytest.importorskip("submitit")
    overrides = ["train.epochs=1"]
    study = make_study(tiny_synthetic, tmp_path, backend="processes", workers=2, threads=1)
    study.overrides += overrides
    rows = run_study(study)  # two spawned worker processes, one run each
    assert sorted(r["loss"] for r in rows) == ["focal", "mse"]
    first = {r["loss"]: r["EPE"] for r in rows}

    study = make_study(tiny_synthetic, tmp_path, seeds=(0, 1), backend="submitit", cluster="local", workers=2,
                       threads=1)
    study.overrides += overrides
    rows = run_study(study)  # seed 0 is finished: only the two seed-1 runs become jobs
    jobs = {p.name.split("_")[0] for p in (tmp_path / "study" / "submitit").glob("*_result.pkl")}
    assert len(jobs) == 2
    runs = sorted((r["loss"], r["seed"]) for r in rows)
    assert runs == [("focal", 0), ("focal", 1), ("mse", 0), ("mse", 1)]
    assert {r["loss"]: r["EPE"] for r in rows if r["seed"] == 0} == first  # read back, not retrained


@pytest.mark.slow
def test_validation_every_n_steps_and_images_every_kth_validation(tiny_synthetic, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from kpdet.config import load_config

    cfg = load_config("configs/smoke.yaml", [*data_overrides(tiny_synthetic), f"work_dir={tmp_path}",
                                             "train.max_iters_per_epoch=3", "train.val_every_steps=2",
                                             "eval.image_interval=2", "eval.vis_images=2"])
    runner.fit(cfg)
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    # validations: step 2 (every 2 steps) and step 3 (end of the epoch); step 2 is the 0th -> images
    assert [h["step"] for h in history] == [2, 3]
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    panels = {"val/predictions", "val/heatmaps", "val/worst", "val/pck_per_keypoint"}
    assert panels <= set(events.Tags()["images"])
    assert [e.step for e in events.Images("val/worst")] == [2]
    worst = events.Images("val/worst")[0]
    assert (worst.width, worst.height) == (2 * 64, 64 + 13)  # two crops side by side under captions


def test_a_synthetic_pretrained_run_is_evaluated_without_its_trunk_source(tiny_synthetic, tmp_path,
                                                                          monkeypatch):
    # model.pretrained=synthetic:N is resolved inside fit; the study's predictions and `kpdet test`
    # read the run's own checkpoint and must not rebuild (or fail on) the pretraining source
    # (before: FileNotFoundError "model.pretrained='synthetic:1': no such file" after every such run)
    from omegaconf import OmegaConf

    from kpdet.engine.study.run import PREDICTIONS, save_predictions

    work = tmp_path / "run"
    run = RunSpec("configs/smoke.yaml", (*data_overrides(tiny_synthetic), *BUDGET), make_loss("mse", "t"),
                  "d", 0, str(work))
    cfg = run_config(run)
    runner.fit(cfg)
    monkeypatch.setenv("KPDET_CACHE", str(tmp_path / "empty_cache"))  # no trunk there: any build would fail
    OmegaConf.update(cfg, "model.pretrained", "synthetic:1")
    save_predictions(cfg, work)
    assert (work / PREDICTIONS).exists()
    metrics = runner.test(cfg, str(work / "last.pt"), split="val")
    assert metrics["EPE"] == pytest.approx(json.loads((work / "metrics.json").read_text())["EPE"])
    assert not (tmp_path / "empty_cache").exists()  # nothing was pretrained
