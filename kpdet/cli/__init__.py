"""The `kpdet` command: `kpdet <command> [arguments]`, one module per command in this package.

Each command module has a docstring (its --help text; the first line is its summary), an
`add_arguments(parser)` and a `run(args)`. tools/*.py call `main([...])` with their command's name,
so the console command and the scripts share one argument parser per command.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

COMMANDS = {  # name -> module under kpdet.cli
    "train": "train",
    "test": "test",
    "infer": "infer",
    "export": "export",
    "compare": "compare",
    "convert": "convert",
    "diagnose": "diagnose",
    "make-synthetic": "make_synthetic",
    "pretrain": "pretrain",
    "configs": "configs",
}


def _module(name: str):
    return importlib.import_module(f"kpdet.cli.{COMMANDS[name]}")


def _summary(name: str) -> str:
    return _module(name).__doc__.strip().splitlines()[0]


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpdet", description="Heatmap keypoint detection: train, evaluate, predict, export, compare.",
        epilog="`kpdet COMMAND --help` describes a command. --debug (or KPDET_DEBUG=1) shows the traceback "
               "of a user error.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        sub.add_parser(name, help=_summary(name))
    return parser


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one command, as `kpdet NAME` and tools/NAME.py use it."""
    module = _module(name)
    parser = argparse.ArgumentParser(prog=f"kpdet {name}", description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error")
    return parser


def main(argv: Sequence[str] | None = None):
    """`kpdet COMMAND ...`: parse the command's arguments and run it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        _top_parser().parse_args(argv)  # prints the command list (--help) or the usage error, exits
    name, rest = argv[0], argv[1:]
    parser = command_parser(name)
    # Intermixed: `kpdet train CONFIG key=value --debug key=value`; argparse cannot intermix subcommands.
    intermixed = not getattr(_module(name), "SUBCOMMANDS", False)
    parse = parser.parse_intermixed_args if intermixed else parser.parse_args
    args = parse(rest)
    debug = args.debug or os.environ.get("KPDET_DEBUG") == "1"
    return _run(lambda: _module(name).run(args), debug)


def _run(fn, debug: bool):
    from kpdet.errors import run_cli

    return run_cli(fn, debug=debug)
