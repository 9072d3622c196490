"""Train: python tools/train.py CONFIG [key=value ...]"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kpdet.config import load_config  # noqa: E402
from kpdet.engine.evaluate import keypoint_table, summary_table  # noqa: E402
from kpdet.engine.runner import fit  # noqa: E402
from kpdet.errors import run_cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--debug", action="store_true", help="tracebacks for errors (or KPDET_DEBUG=1)")
    parser.add_argument("config", help="YAML config, e.g. configs/synthetic/focal.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.epochs=3")
    args = parser.parse_intermixed_args()
    cfg = load_config(args.config, args.overrides)
    metrics = fit(cfg)
    print(f"\nfinal metrics ({cfg.work_dir}/metrics.json):\n{summary_table(metrics)}\n")
    print(keypoint_table(metrics))
    print(f"\nTensorBoard: tensorboard --logdir {Path(cfg.work_dir).parent}")


if __name__ == "__main__":
    run_cli(main, debug="--debug" in sys.argv[1:])
