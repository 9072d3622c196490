"""Compare losses: python tools/compare_losses.py CONFIG --losses a,b,c [--seeds N] [key=value ...]

Trains CONFIG once per loss and seed (loss parameters at their defaults) under
work_dir/<loss>/seed<s> and prints the metrics table (also work_dir/comparison.md).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kpdet.config import load_config  # noqa: E402
from kpdet.engine.compare import compare_losses, comparison_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--losses", required=True, help="comma-separated loss names, e.g. daf,mse")
    parser.add_argument("--seeds", type=int, default=1, help="runs per loss (seeds seed, seed+1, ...)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    args = parser.parse_intermixed_args()
    cfg = load_config(args.config, args.overrides)
    results = compare_losses(cfg, [name.strip() for name in args.losses.split(",")], args.seeds)
    print(comparison_table(results))


if __name__ == "__main__":
    main()
