"""python tools/compare_losses.py ...: the same as `kpdet compare ...` (kpdet/cli/); --help for more."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from kpdet.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["compare", *sys.argv[1:]])
