"""List the configs shipped with kpdet: kpdet configs [PATTERN]

Each can be named without a path (`kpdet train synthetic/focal`); `--show NAME` prints one,
to copy and edit. Configs whose data lives in the kpdet repository (../shared/data/...) need
data.<split>.ann_file and data.<split>.img_dir overrides outside a checkout.
"""


def add_arguments(parser) -> None:
    parser.add_argument("pattern", nargs="?", default="", help="only names containing this text")
    parser.add_argument("--show", metavar="NAME", help="print this config's YAML")


def run(args) -> None:
    from kpdet.config import find_config, shipped_configs

    if args.show:
        print(find_config(args.show).read_text(), end="")
        return
    for name in shipped_configs():
        if args.pattern in name:
            print(f"{name:<40} {_summary(find_config(name))}")


def _summary(path) -> str:
    """The config's first comment line."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
