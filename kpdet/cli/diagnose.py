"""Loss diagnostics: kpdet diagnose CONFIG [--steps N] [--every M] [--out JSON] [key=value ...]

Trains CONFIG for N steps (nothing written but --out) and prints, every M steps, the gradient
norm reaching the backbone, where the heatmap gradient lands (positive pixel, Gaussian
neighbourhood, far background) and the head's output statistics (mean, spread, contrast, and
separation: a channel's score at its own keypoint minus at the other keypoints).
See kpdet/engine/diagnose.py and docs/focal.md.
"""
import json
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("config", help="YAML config or shipped config name")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps to train")
    parser.add_argument("--every", type=int, default=10, help="record every M steps (step 0 always)")
    parser.add_argument("--out", help="also write the rows to this JSON file")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides")


def run(args) -> None:
    from kpdet.config import load_config
    from kpdet.engine.diagnose import diagnose
    from kpdet.metrics import format_rows

    rows = diagnose(load_config(args.config, args.overrides), args.steps, args.every)
    print(format_rows(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
