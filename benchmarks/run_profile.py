"""Where a training run's wall time goes: building, training steps, validation, panels, checkpoints.

    python benchmarks/run_profile.py [--config configs/openfield/focal.yaml] [key=value ...]

Runs `fit` once with timers wrapped around its parts (no code change in kpdet: the runner's
functions are wrapped from here) and prints a Markdown table: seconds and share of the wall
time for building (datasets, cache, model, loaders), train_one_epoch (all epochs, including
the loader's start-up at each epoch), evaluate, the TensorBoard panels, last.pt / best.pt
writes (with the background writer: what the training loop still waits for), and the rest
(logging, history). The run writes into a temporary work_dir.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kpdet.config import load_config  # noqa: E402
from kpdet.engine import runner  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)
COUNTS: dict[str, int] = defaultdict(int)


def timed(name: str, function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            TIMES[name] += time.perf_counter() - start
            COUNTS[name] += 1
    return wrapper


def checkpoint_name(save):
    """save_atomic timed under the file it writes (last.pt, best.pt)."""
    def wrapper(state, path):
        return timed(f"write {Path(path).name}", save)(state, path)
    return wrapper


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/openfield/focal.yaml")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        cfg = load_config(args.config, [f"work_dir={work}", *args.overrides])
        runner.build_components = timed("build (data, cache, model, loaders)", runner.build_components)
        runner.train_one_epoch = timed("train_one_epoch", runner.train_one_epoch)
        runner.evaluate = timed("evaluate (val forward + metrics)", runner.evaluate)
        runner.log_panels = timed("TensorBoard panels", runner.log_panels)
        runner.save_atomic = checkpoint_name(runner.save_atomic)
        writer = getattr(runner, "BackgroundWriter", None)  # kpdet with last.pt off the critical path
        if writer is not None:  # what the loop still waits for: the previous write, then the snapshot
            writer.submit = timed("write last.pt (background: wait + snapshot)", writer.submit)
        start = time.perf_counter()
        runner.fit(cfg)
        wall = time.perf_counter() - start
    steps = cfg.train.epochs * (cfg.train.max_iters_per_epoch or 0)
    print(f"config {args.config} {' '.join(args.overrides)}; wall {wall:.1f} s"
          + (f" (<= {steps} steps)" if steps else ""))
    print("| part | calls | s | share of wall |\n|---|---|---|---|")
    for name, seconds in TIMES.items():
        print(f"| {name} | {COUNTS[name]} | {seconds:.2f} | {seconds / wall:.0%} |")
    rest = wall - sum(TIMES.values())
    print(f"| rest (logging, history, fit's own work) | - | {rest:.2f} | {rest / wall:.0%} |")


if __name__ == "__main__":
    main()
