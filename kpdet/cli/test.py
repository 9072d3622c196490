"""Evaluate a checkpoint: kpdet test CONFIG CHECKPOINT [--out metrics.json] [key=value ...]"""
import json
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("config", help="YAML config or shipped config name (a run's config.yaml)")
    parser.add_argument("checkpoint", help="last.pt or best.pt of a run")
    parser.add_argument("--out", help="write the metrics to this JSON file")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"),
                        help="data split to evaluate (test falls back to val when data.test is unset)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides")


def run(args) -> None:
    from kpdet.config import load_config
    from kpdet.engine.evaluate import keypoint_table, summary_table
    from kpdet.engine.runner import test

    cfg = load_config(args.config, args.overrides)
    metrics = test(cfg, args.checkpoint, args.split)
    print(f"{summary_table(metrics)}\n\n{keypoint_table(metrics)}")
    if args.out:
        Path(args.out).write_text(json.dumps(metrics, indent=2))
