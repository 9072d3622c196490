"""Bottom-up runs through tools' code path: point objects learn; the whole-frame pipeline runs end to end."""
import json

import numpy as np
import pytest

from kpdet.config import load_config
from kpdet.engine.runner import fit


def points_config(root, work, *extra):
    # evaluate on the training images (augmentation off): the path must fit 16 images
    data = [f"data.{s}.ann_file={root / 'train.json'}" for s in ("train", "val")]
    data += [f"data.{s}.img_dir={root / 'images'}" for s in ("train", "val")]
    return load_config("configs/points/focal.yaml", [
        *data, f"work_dir={work}", "device=cpu", "data.num_workers=0", "data.synthetic.generate=false",
        "data.aug.flip_prob=0", "data.aug.rotation_prob=0", "data.aug.scale_factor=0",
        "model.input_size=[128,128]", "model.head_channels=32", "train.batch_size=8", "train.warmup_iters=5",
        "train.val_interval=1000", "train.checkpoint_interval=1000", "data.bottom_up.max_instances=16",
        *extra])


def test_points_learn_on_tiny_data(tiny_points, tmp_path):
    untrained = fit(points_config(tiny_points, tmp_path / "u", "train.epochs=0"))
    trained = fit(points_config(tiny_points, tmp_path / "t", "train.epochs=15", "train.lr=0.003"))
    # untrained, every score sits at the 0.1 prior: no peak passes the threshold, AP 0.
    # 30 steps find nearly every point within 3 px and rank them above the spurious peaks
    # (AP@3 0.47-0.85 measured, by thread count); precision at the 0.1 threshold needs longer training.
    assert untrained["AP@3"] < 0.1 and untrained["recall@3"] < 0.1, untrained
    assert trained["AP@3"] > 0.3 and trained["recall@3"] > 0.7, trained
    # kpdet.Predictor on the checkpoint: every point of an image, no boxes, in image px
    from kpdet import Predictor

    found = Predictor.from_checkpoint(tmp_path / "t" / "best.pt", device="cpu").predict(
        str(tiny_points / "images" / "train" / "000001.png"))
    data = json.loads((tiny_points / "train.json").read_text())
    truth = np.array([a["keypoints"][:2] for a in data["annotations"] if a["image_id"] == 1])
    N = len(found["instance_scores"])
    assert found["keypoints"].shape == (N, 1, 2) and found["scores"].shape == (N, 1)
    assert found["labels"].shape == (N,)
    assert (found["category_ids"] == found["labels"] + 1).all()  # the set's categories are 1, 2, 3
    nearest = np.linalg.norm(truth[:, None] - found["keypoints"][None, :, 0], axis=-1).min(1)
    assert (nearest <= 3).mean() > 0.7, nearest


def test_the_point_set_is_generated_as_described(tiny_points):
    data = json.loads((tiny_points / "train.json").read_text())
    assert [c["keypoints"] for c in data["categories"]] == [["center"]] * 3
    counts = np.bincount([a["image_id"] for a in data["annotations"]], minlength=17)[1:]
    assert counts.max() <= 12 and len(data["images"]) == 16
    xy = np.array([a["keypoints"][:2] for a in data["annotations"]])
    assert (xy >= 0).all() and (xy <= 63).all()


def test_whole_frame_pipeline_runs_end_to_end(tiny_synthetic, tmp_path):
    # one figure per image (the first annotation of each synthetic image), the whole frame
    data = json.loads((tiny_synthetic / "train.json").read_text())
    first = {}
    for ann in data["annotations"]:
        first.setdefault(ann["image_id"], ann)
    (tmp_path / "one.json").write_text(json.dumps({**data, "annotations": list(first.values())}))
    img = tiny_synthetic / "images"
    cfg = load_config("configs/openfield/focal_whole_frame.yaml", [
        f"data.train.ann_file={tmp_path / 'one.json'}", f"data.train.img_dir={img}",
        f"data.val.ann_file={tmp_path / 'one.json'}", f"data.val.img_dir={img}", f"work_dir={tmp_path / 'w'}",
        "device=cpu", "data.num_workers=0", "model.input_size=[96,64]", "model.head_channels=32",
        "train.epochs=1", "train.max_iters_per_epoch=2", "train.batch_size=4", "eval.vis_images=1",
        "train.device_targets=true"])  # targets rendered in the step (by the loader in the offset test)
    metrics = fit(cfg)
    assert {"AP", "RMSE", "EPE", "PCK@0.05"} <= set(metrics)
    assert json.loads((tmp_path / "w" / "metrics.json").read_text())["EPE"] == pytest.approx(metrics["EPE"])
    # kpdet.Predictor without boxes reads the whole frame exactly as evaluation did
    from kpdet import Predictor
    from kpdet.data.bottom_up import letterbox_matrix
    from kpdet.data.transforms import invert_affine
    from kpdet.predict import crop_for_model

    predictor = Predictor.from_checkpoint(tmp_path / "w" / "best.pt", device="cpu")
    image = np.zeros((70, 90, 3), np.uint8)
    _, affine = crop_for_model(image, [-0.5, -0.5, 90, 70], (96, 64), predictor.padding)
    np.testing.assert_allclose(affine.numpy(), invert_affine(letterbox_matrix(90, 70, (96, 64))), atol=1e-5)
    found = predictor.predict(image)
    assert found["keypoints"].shape == (1, 17, 2) and found["instance_scores"].shape == (1,)
    with pytest.raises(ValueError, match="bottom-up.*no boxes"):
        predictor.predict(image, boxes=[[0, 0, 10, 10]])


def test_a_loss_study_on_points_ranks_by_the_point_metric(tiny_points, tmp_path):
    from kpdet.engine.compare import build_study, run_study

    data = [f"data.{s}.ann_file={tiny_points / 'train.json'}" for s in ("train", "val")]
    data += [f"data.{s}.img_dir={tiny_points / 'images'}" for s in ("train", "val")]
    study = build_study("configs/points/focal.yaml", "daf,mse", 1, [
        *data, f"work_dir={tmp_path}", "device=cpu", "data.num_workers=0", "data.synthetic.generate=false",
        "train.epochs=1", "train.batch_size=8", "model.input_size=[64,64]", "model.head_channels=32"])
    rows = run_study(study)
    assert {r["loss"] for r in rows} == {"daf", "mse"} and all("F1@3" in r for r in rows)
    report = (tmp_path / "results.md").read_text()
    assert "Ranked by F1@3" in report
    # points have no per-keypoint predictions: no empty PCK-curve plot, and the report lists what it drew
    assert not (tmp_path / "default_pck_curve.png").exists()
    assert (tmp_path / "default_F1_at_3_vs_step.png").exists()
    assert "Plots: `default_F1_at_3_vs_step.png`" in report and "pck_curve" not in report
    saved = np.load(tmp_path / "default" / "daf" / "seed0" / "predictions.npz")
    annotations = json.loads((tiny_points / "train.json").read_text())["annotations"]
    assert saved["gt_points"].shape == (len(annotations), 2) and len(saved["points"]) == len(saved["scores"])


def test_multi_instance_pose_learns_on_tiny_data(dumbbells, tmp_path):
    def config(work, *extra):
        data = [f"data.{s}.ann_file={dumbbells / 'train.json'}" for s in ("train", "val")]
        data += [f"data.{s}.img_dir={dumbbells / 'images'}" for s in ("train", "val")]
        return load_config("configs/bottom_up/synthetic_focal.yaml", [
            *data, f"work_dir={work}", "device=cpu", "data.num_workers=0", "data.synthetic.generate=false",
            "data.aug.flip_prob=0", "data.aug.rotation_prob=0", "data.aug.scale_factor=0",
            "data.aug.shift_factor=0",
            "data.aug.photometric=false", "model.input_size=[128,128]", "model.head_channels=32",
            "codec.sigma=1.0", "train.batch_size=8", "train.warmup_iters=5", "train.val_interval=1000",
            "train.checkpoint_interval=1000", "data.oks_sigmas=[0.1,0.1]", *extra])

    untrained = fit(config(tmp_path / "u", "train.epochs=0"))
    trained = fit(config(tmp_path / "t", "train.epochs=32", "train.lr=0.003"))
    # untrained, no centre passes the threshold (AP 0); 32 steps find every figure and group its
    # keypoints (matched 1.0, PCK@0.2 0.52, AP50 0.20, AP 0.05 measured; 40 steps on 16 images: AP 0.20)
    assert untrained["AP"] < 0.05, untrained
    assert trained["AP50"] > 0.1 and trained["matched_fraction"] > 0.8 and trained["PCK@0.2"] > 0.35, trained
    from kpdet import Predictor

    found = Predictor.from_checkpoint(tmp_path / "t" / "best.pt", device="cpu").predict(
        str(dumbbells / "images" / "0.png"))
    N = len(found["instance_scores"])
    assert N >= 1 and found["keypoints"].shape == (N, 2, 2) and found["scores"].shape == (N, 2)
    assert (np.diff(found["instance_scores"]) <= 0).all()


def test_infer_results_take_bottom_up_instance_scores_and_categories():
    from kpdet.engine.infer import coco_results

    keypoints, scores = np.zeros((2, 1, 2)), np.array([[0.9], [0.4]])
    found = {"instance_scores": np.array([0.9, 0.4]), "category_ids": np.array([3, 1])}
    entries = coco_results(7, keypoints, scores, 1, found)
    assert [(e["category_id"], e["score"]) for e in entries] == [(3, 0.9), (1, 0.4)]
    assert [e["category_id"] for e in coco_results(7, keypoints, scores, 5)] == [5, 5]  # top-down as before


def test_diagnose_reads_the_heatmap_part_of_bottom_up_outputs(tiny_points, tmp_path):
    from kpdet.engine.diagnose import diagnose

    rows = diagnose(points_config(tiny_points, tmp_path, "model.input_size=[64,64]", "train.batch_size=4"), 1)
    assert len(rows) == 1 and np.isfinite(rows[0]["loss"])
    assert 0.09 < rows[0]["score_mean"] < 0.11  # the heatmap channels alone, at the 0.1 prior


def test_a_loss_study_on_multi_instance_pose_reports_oks_ap(dumbbells, tmp_path):
    # a pose run's outputs are centre + keypoint maps and displacements, not crops: the study's
    # final-weights predictions are skipped for it (they fed the PCK-curve plot of crops)
    from kpdet.engine.compare import build_study, run_study

    data = [f"data.{s}.ann_file={dumbbells / 'train.json'}" for s in ("train", "val")]
    data += [f"data.{s}.img_dir={dumbbells / 'images'}" for s in ("train", "val")]
    study = build_study("configs/bottom_up/synthetic_focal.yaml", "daf,mse", 1, [
        *data, f"work_dir={tmp_path}", "device=cpu", "data.num_workers=0", "data.synthetic.generate=false",
        "train.epochs=1", "train.batch_size=8", "model.input_size=[64,64]", "model.head_channels=32",
        "data.oks_sigmas=[0.1,0.1]", "eval.vis_images=0"])
    rows = run_study(study)
    assert {r["loss"] for r in rows} == {"daf", "mse"} and all(np.isfinite(r["AP"]) for r in rows)
    report = (tmp_path / "results.md").read_text()
    assert "Ranked by AP" in report and "pck_curve" not in report
