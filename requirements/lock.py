"""Refresh requirements/dev.lock: resolve kpdet's dependencies afresh in a new virtual environment.

    python requirements/lock.py [--torch "torch==2.14.1 torchvision==0.29.1"] [--python python3]

(`make lock` runs it.) Steps: a new venv in a temporary folder; torch and torchvision as pinned
(pip takes them from this workplace's local disk); every requirement of pyproject.toml, runtime and
all extras (lower bounds only, so pip picks the newest releases); `pip freeze` into
requirements/dev.lock. Then run `.ci/run` (a fresh install plus the whole suite) and commit the lock
only if it passes. pyproject.toml is not touched: it declares lower bounds, never caps.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import tomllib  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "dev.lock"
PYPROJECT = ROOT / "pyproject.toml"


def canonical(name: str) -> str:
    """PEP 503 name: `Jinja2` and `jinja2`, `typing_extensions` and `typing-extensions` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: dict) -> list[str]:
    """Runtime and every extra's requirements, kpdet's own extras left out."""
    project = pyproject["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return sorted({r for r in reqs if not r.startswith(project["name"])})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", default="torch==2.14.1 torchvision==0.29.1")
    parser.add_argument("--python", default=sys.executable, help="interpreter that creates the venv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kpdet-lock-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([args.python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run(pip + args.torch.split(), check=True)
        subprocess.run(pip + requirements(tomllib.loads(PYPROJECT.read_text())), check=True)
        frozen = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
                                check=True, capture_output=True, text=True).stdout
        version = subprocess.run([str(venv / "bin" / "python"), "-V"], capture_output=True, text=True).stdout
    LOCK.write_text("# Exact versions for make test, make demo and CI: pip install -c requirements/dev.lock\n"
                    f"# Written by `make lock` (requirements/lock.py) on {date.today()}, {version.strip()}, "
                    f"resolved in a new venv.\n{frozen}")
    pins = re.findall(r"^([^#=\s]+)==(\S+)$", frozen, re.M)
    print(f"wrote {LOCK.relative_to(ROOT)} ({len(pins)} packages); run .ci/run, commit it if it passes")


if __name__ == "__main__":
    main()
