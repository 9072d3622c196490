"""best.pt with a NaN best metric (presence_AUROC on a split without v=0 keypoints)."""
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from kpdet.engine.runner import TrainState, _save_best
from kpdet.keypoints import KeypointSpec


def test_nan_metric_writes_best_but_never_becomes_the_best(tmp_path):
    cfg = OmegaConf.create({"eval": {"best_metric": "m"}, "work_dir": str(tmp_path)})
    spec = KeypointSpec(("a",))
    c = SimpleNamespace(eval_model=torch.nn.Linear(1, 1), train_set=SimpleNamespace(spec=spec))
    state = TrainState()
    for value, best in [(0.5, 0.5), (float("nan"), 0.5), (0.4, 0.5), (0.6, 0.6)]:
        (tmp_path / "best.pt").unlink(missing_ok=True)
        state.last_metrics = {"m": value}
        _save_best(cfg, tmp_path, c, state)
        assert state.best == best
        # written for a new best and for a NaN (the latest weights), not for a worse number
        assert (tmp_path / "best.pt").exists() == (value != value or value == best)
