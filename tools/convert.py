"""python tools/convert.py ...: the same as `kpdet convert ...` (kpdet/cli/); --help for the arguments."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from kpdet.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["convert", *sys.argv[1:]])
