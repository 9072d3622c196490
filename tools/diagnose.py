"""Loss diagnostics: python tools/diagnose.py CONFIG [--steps N] [--every M] [--out JSON] [key=value ...]

Trains CONFIG for N steps (nothing written but --out) and prints, every M steps, the gradient
norm reaching the backbone, where the heatmap gradient lands (positive pixel, Gaussian
neighbourhood, far background) and the head's output statistics (mean, spread, contrast, and
separation: a channel's score at its own keypoint minus at the other keypoints).
See kpdet/engine/diagnose.py and docs/focal.md.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kpdet.config import load_config  # noqa: E402
from kpdet.engine.diagnose import diagnose  # noqa: E402
from kpdet.errors import run_cli  # noqa: E402
from kpdet.metrics import format_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="tracebacks for errors (or KPDET_DEBUG=1)")
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps to train")
    parser.add_argument("--every", type=int, default=10, help="record every M steps (step 0 always)")
    parser.add_argument("--out", help="also write the rows to this JSON file")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    args = parser.parse_intermixed_args()
    rows = diagnose(load_config(args.config, args.overrides), args.steps, args.every)
    print(format_rows(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    run_cli(main, debug="--debug" in sys.argv[1:])
