"""Loss study: kpdet compare CONFIG_OR_STUDY --losses "a,b(k=v)" [--seeds N] [key=value ...]

CONFIG_OR_STUDY is a training config (then --losses is required) or a study file
(a path, or a shipped one such as studies/synthetic_focal_vs_mse). Runs go to
work_dir/<dataset>/<loss>/seed<s>; finished ones are skipped, interrupted ones resume.
Writes work_dir/results.csv, results.md and PNG plots. --report rebuilds those from the
finished runs without training.
"""
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("config", help="training config or study file")
    parser.add_argument("--losses",
                        help='comma-separated losses, optional parameters: "daf,mse,dfl(alpha=2)"')
    parser.add_argument("--seeds", type=int, help="runs per loss (seeds seed, seed+1, ...)")
    parser.add_argument("--backend", choices=("serial", "processes", "submitit"), help="how runs execute")
    parser.add_argument("--workers", type=int, help="concurrent runs (default: one per GPU, else 1)")
    parser.add_argument("--report", action="store_true", help="rebuild tables and plots only")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides for every run")


def run(args) -> None:
    from kpdet.engine.compare import build_study, run_study

    study = build_study(args.config, args.losses, args.seeds, args.overrides, args.backend, args.workers)
    run_study(study, train=not args.report)
    print((Path(study.work_dir) / "results.md").read_text())
    print(f"results: {study.work_dir}/results.csv, results.md, *.png", flush=True)
