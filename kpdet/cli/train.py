"""Train a model: kpdet train CONFIG [key=value ...]

CONFIG is a YAML file or a shipped config named without a path (`kpdet configs` lists them),
e.g. `kpdet train synthetic/focal train.epochs=2`. Writes work_dir/{last,best}.pt, metrics.json,
history.jsonl and TensorBoard logs, and prints the final metrics.
"""
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("config", help="YAML config or shipped config name, e.g. synthetic/focal")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.epochs=3")


def run(args) -> None:
    from kpdet.config import load_config
    from kpdet.engine.evaluate import keypoint_table, summary_table
    from kpdet.engine.runner import fit

    cfg = load_config(args.config, args.overrides)
    metrics = fit(cfg)
    print(f"\nfinal metrics ({cfg.work_dir}/metrics.json):\n{summary_table(metrics)}\n")
    print(keypoint_table(metrics))
    print(f"\nTensorBoard: tensorboard --logdir {Path(cfg.work_dir).parent}")
