"""Alias of tools/compare_losses.py: python tools/study.py CONFIG_OR_STUDY [--losses ...] [--report] ..."""
import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).with_name("compare_losses.py")), run_name="__main__")
