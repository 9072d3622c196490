"""tools/train.py, tools/test.py and tools/infer.py as a user runs them."""
import json

import pytest
import torch

from tests.conftest import data_overrides, run_tool

CONTRACT_KEYS = {"AP", "AP50", "AP75", "AR", "PCK@0.05", "PCK@0.1", "PCK@0.2", "EPE"}


@pytest.fixture(scope="module")
def trained_run(tiny_synthetic, tmp_path_factory):
    work = tmp_path_factory.mktemp("run")
    out = run_tool("tools/train.py", "configs/smoke.yaml", f"work_dir={work}", "train.max_iters_per_epoch=3",
                   *data_overrides(tiny_synthetic))
    return work, out


def test_train_writes_the_contract_outputs(trained_run):
    work, out = trained_run
    assert {p.name for p in work.iterdir()} >= {"config.yaml", "last.pt", "best.pt", "metrics.json", "tb"}
    metrics = json.loads((work / "metrics.json").read_text())
    assert CONTRACT_KEYS <= set(metrics) and all(isinstance(v, float) for v in metrics.values())
    assert 0.0 <= metrics["PCK@0.05"] <= metrics["PCK@0.1"] <= metrics["PCK@0.2"] <= 1.0
    assert f"tensorboard --logdir {work.parent}" in out
    assert any(p.name.startswith("events.out.tfevents") for p in (work / "tb").iterdir())
    checkpoint = torch.load(work / "last.pt", weights_only=True)  # loadable without pickle
    assert checkpoint["state"]["epoch"] == 1 and checkpoint["state"]["step"] == 3


def test_test_tool_reproduces_the_final_metrics(trained_run, tiny_synthetic, tmp_path):
    work, _ = trained_run
    out_file = tmp_path / "m.json"
    out = run_tool("tools/test.py", str(work / "config.yaml"), str(work / "last.pt"), "--out", str(out_file))
    # Same weights, same validation data, no randomness in evaluation: identical numbers.
    assert json.loads(out_file.read_text()) == pytest.approx(json.loads((work / "metrics.json").read_text()))
    summary = out.split("\n\n")[0]
    assert "presence_AUROC" in summary and "ECE" in summary


def test_confidence_metrics_reach_metrics_json_history_and_tensorboard(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work, _ = trained_run
    metrics = json.loads((work / "metrics.json").read_text())
    # the synthetic val split has unlabelled (v = 0) keypoints, so the AUROC is a number
    assert 0.0 <= metrics["presence_AUROC"] <= 1.0 and 0.0 <= metrics["ECE"] <= 1.0
    history = [json.loads(line) for line in (work / "history.jsonl").read_text().splitlines()]
    assert history[-1]["presence_AUROC"] == metrics["presence_AUROC"]
    tags = EventAccumulator(str(work / "tb")).Reload().Tags()["scalars"]
    assert {"val/presence_AUROC", "val/ECE"} <= set(tags)


def test_infer_tool_writes_predictions_for_each_image(trained_run, tiny_synthetic, tmp_path):
    work, _ = trained_run
    images = sorted((tiny_synthetic / "images" / "val").iterdir())[:2]
    folder = tmp_path / "in"
    folder.mkdir()
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    run_tool("tools/infer.py", str(work / "config.yaml"), str(work / "best.pt"), str(folder),
             "--out", str(tmp_path / "out"))
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [p["file_name"] for p in predictions] == [image.name for image in images]
    assert all(len(p["keypoints"][0]) == 17 and len(p["keypoints"][0][0]) == 3 for p in predictions)
    assert len(list((tmp_path / "out").glob("*_pred.jpg"))) == 2


def test_bad_override_fails_naming_the_key(tiny_synthetic):
    with pytest.raises(AssertionError, match="train.epochz"):
        run_tool("tools/train.py", "configs/smoke.yaml", "train.epochz=2")


def test_compare_losses_tool_trains_each_loss_and_tabulates(tiny_synthetic, tmp_path):
    out = run_tool("tools/compare_losses.py", "configs/smoke.yaml", "--losses", "daf,mse", "--seeds", "2",
                   f"work_dir={tmp_path}", "train.max_iters_per_epoch=1", "eval.vis_images=0",
                   *data_overrides(tiny_synthetic))
    results = json.loads((tmp_path / "comparison.json").read_text())
    assert set(results) == {"daf", "mse"} and all(len(v["AP"]) == 2 for v in results.values())
    assert sorted(p.name for p in (tmp_path / "default" / "mse").iterdir()) == ["seed0", "seed1"]
    rows = [line for line in out.splitlines() if line.startswith("| daf") or line.startswith("| mse")]
    # summary (mean ± std over the two seeds) and timing rows, then one row per run (loss, seed, ...)
    assert len(rows) == 8 and "±" in rows[0]
    per_run = [line.split("|")[1:3] for line in rows[4:]]
    assert sorted((loss.strip(), seed.strip()) for loss, seed in per_run) == [
        ("daf", "0"), ("daf", "1"), ("mse", "0"), ("mse", "1")]
    ranked = [line for line in out.splitlines() if line.startswith(("| 1 | ", "| 2 | "))]
    assert len(ranked) == 2 and "| 2 |" in ranked[0]  # rank, loss, n = 2 seeds
    assert (tmp_path / "results.csv").read_text().count("\ndefault,") == 4  # one row per run
    assert len(list(tmp_path.glob("*.png"))) == 3
