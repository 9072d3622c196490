"""eval.flip_test reaches the bottom-up predictors from the config: the runner's evaluation (test and
validation share it) and kpdet.Predictor, with the keypoint spec's flip index."""
import pytest
import torch
from omegaconf import OmegaConf

from kpdet.config import load_config
from kpdet.engine import runner
from kpdet.predict import PosePredictor

SMALL = ["device=cpu", "data.num_workers=0", "data.synthetic.generate=false", "model.input_size=[32,32]",
         "model.head_channels=32", "eval.vis_images=0"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small ops: 1 thread is faster here


def _config(config: str, root, work, *extra):
    data = [f"data.{s}.{k}={root / v}" for s in ("train", "val")
            for k, v in (("ann_file", "train.json"), ("img_dir", "images"))]
    return load_config(config, [*data, f"work_dir={work}", *SMALL, *extra])


def _checkpoint(cfg, work):
    """An untrained model of `cfg` saved as a kpdet checkpoint (weights, keypoints, config)."""
    from kpdet.build import build_model_from_cfg, spec_to_checkpoint
    from kpdet.engine import builders

    spec = builders.build_split(cfg, "val", train=False).spec
    torch.manual_seed(0)
    model = build_model_from_cfg(cfg, spec.num_keypoints, "sigmoid")
    work.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "keypoints": spec_to_checkpoint(spec),
                "config": OmegaConf.to_yaml(cfg)}, work / "best.pt")
    return work / "best.pt"


def _recording(monkeypatch, name: str) -> list:
    """Wrap runner.<name> (the evaluation) so that the predictor it gets is kept; it still runs."""
    seen, real = [], getattr(runner, name)

    def wrapper(predictor, *args, **kwargs):
        seen.append(predictor)
        return real(predictor, *args, **kwargs)

    monkeypatch.setattr(runner, name, wrapper)
    return seen


def _count_passes(model) -> list:
    inputs = []
    model.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach().clone()))
    return inputs


def test_pose_flip_test_reaches_the_evaluation_and_the_predictor(dumbbells, tmp_path, monkeypatch):
    # head/tail made a left/right pair by data.flip_pairs: the spec's flip index is [1, 0]
    extra = ["data.flip_pairs=[[0,1]]", "data.oks_sigmas=[0.1,0.1]"]
    pose = "configs/bottom_up/synthetic_focal.yaml"
    cfg = _config(pose, dumbbells, tmp_path, "eval.flip_test=true", *extra)
    checkpoint = _checkpoint(cfg, tmp_path / "run")
    seen = _recording(monkeypatch, "evaluate_pose")
    runner.test(cfg, str(checkpoint), "val")
    off = _config(pose, dumbbells, tmp_path, *extra)
    runner.test(off, str(checkpoint), "val")
    assert [type(p) for p in seen] == [PosePredictor, PosePredictor]
    assert seen[0].flip_index == [1, 0] and seen[1].flip_index is None

    from kpdet import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")  # eval.flip_test=true inside
    passes = _count_passes(predictor.model)
    found = predictor.predict(str(dumbbells / "images" / "0.png"))
    assert predictor.pose_predictor(True).flip_index == [1, 0]
    assert len(passes) == 2 and torch.equal(passes[1], passes[0].flip(-1))  # the image and its mirror
    assert found["keypoints"].shape[1:] == (2, 2)
    predictor.predict(str(dumbbells / "images" / "0.png"), flip_test=False)
    assert len(passes) == 3


def test_points_flip_test_reaches_the_evaluation(tiny_points, tmp_path, monkeypatch):
    # point classes have no left/right: the flip index is the identity, the maps are mirrored back only
    cfg = _config("configs/points/focal.yaml", tiny_points, tmp_path, "eval.flip_test=true",
                  "data.bottom_up.max_instances=16")
    seen = _recording(monkeypatch, "evaluate_points")
    runner.test(cfg, str(_checkpoint(cfg, tmp_path / "run")), "val")
    assert seen[0].flip_index == [0, 1, 2] and seen[0].flip_heatmaps is not None
