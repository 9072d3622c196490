"""Evaluate a checkpoint: python tools/test.py CONFIG CHECKPOINT [--out metrics.json] [key=value ...]"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kpdet.config import load_config  # noqa: E402
from kpdet.engine.evaluate import keypoint_table, summary_table  # noqa: E402
from kpdet.engine.runner import test  # noqa: E402
from kpdet.errors import run_cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--debug", action="store_true", help="tracebacks for errors (or KPDET_DEBUG=1)")
    parser.add_argument("config")
    parser.add_argument("checkpoint", help="last.pt or best.pt of a run")
    parser.add_argument("--out", help="write the metrics to this JSON file")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"),
                        help="data split to evaluate (test falls back to val when data.test is unset)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    args = parser.parse_intermixed_args()
    cfg = load_config(args.config, args.overrides)
    metrics = test(cfg, args.checkpoint, args.split)
    print(f"{summary_table(metrics)}\n\n{keypoint_table(metrics)}")
    if args.out:
        Path(args.out).write_text(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    run_cli(main, debug="--debug" in sys.argv[1:])
