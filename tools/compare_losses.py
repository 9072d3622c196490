"""Loss study: python tools/compare_losses.py CONFIG_OR_STUDY --losses "a,b(k=v)" [--seeds N] [key=value ...]

CONFIG_OR_STUDY is a training config (then --losses is required) or a study file
(configs/studies/*.yaml). Runs go to work_dir/<dataset>/<loss>/seed<s>; finished ones
are skipped, interrupted ones resume. Writes work_dir/results.csv, results.md and PNG plots.
--report rebuilds those from the finished runs without training.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kpdet.engine.compare import build_study, run_study  # noqa: E402
from kpdet.errors import run_cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="tracebacks for errors (or KPDET_DEBUG=1)")
    parser.add_argument("config", help="training config or study file")
    parser.add_argument("--losses",
                        help='comma-separated losses, optional parameters: "daf,mse,dfl(alpha=2)"')
    parser.add_argument("--seeds", type=int, help="runs per loss (seeds seed, seed+1, ...)")
    parser.add_argument("--backend", choices=("serial", "processes", "submitit"), help="how runs execute")
    parser.add_argument("--workers", type=int, help="concurrent runs (default: one per GPU, else 1)")
    parser.add_argument("--report", action="store_true", help="rebuild tables and plots only")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides for every run")
    args = parser.parse_intermixed_args()
    study = build_study(args.config, args.losses, args.seeds, args.overrides, args.backend, args.workers)
    run_study(study, train=not args.report)
    print((Path(study.work_dir) / "results.md").read_text())
    print(f"results: {study.work_dir}/results.csv, results.md, *.png", flush=True)


if __name__ == "__main__":
    run_cli(main, debug="--debug" in sys.argv[1:])
