"""python tools/pretrain.py ...: the same as `kpdet pretrain ...` (kpdet/cli/)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from kpdet.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["pretrain", *sys.argv[1:]])
