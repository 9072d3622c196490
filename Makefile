# The two commands of README.md. PYTHON may point at another interpreter: make test PYTHON=python3.11
# Both install with the exact versions of requirements/dev.lock (pip constraints); `make lock` refreshes it.
PYTHON ?= python
TORCH = torch==2.14.1 torchvision==0.29.1
LOCK = requirements/dev.lock
PIP = $(PYTHON) -m pip install -q -c $(LOCK)
DEMO_ARGS ?=

.PHONY: install install-dev demo test lint bench lock dist release-check

install:
	$(PIP) $(TORCH)
	$(PIP) -e .

install-dev:
	$(PIP) $(TORCH)
	$(PIP) -e ".[dev]"

# Main job: generate the synthetic set if missing, train focal, evaluate, print metrics.
demo: install
	$(PYTHON) tools/train.py configs/synthetic/focal.yaml $(DEMO_ARGS)

test: install-dev
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .

bench:
	$(PYTHON) benchmarks/losses.py
	$(PYTHON) benchmarks/codec.py

# Scheduled refresh (README, "Pinned versions"): newest releases resolved in a new venv -> $(LOCK)
# (pyproject.toml keeps lower bounds only); then .ci/run, and commit the lock if it passes.
lock:
	$(PYTHON) requirements/lock.py --torch "$(TORCH)"

# The sdist and wheel under dist/ (the shipped configs are package data; `kpdet` is the console command).
dist:
	rm -rf dist
	$(PYTHON) -m build --outdir dist .

# The wheel installed as a user would (newest dependencies, no lock) in a new venv outside the repo,
# then train -> test -> infer -> export there (README, "Installed as a library").
release-check: dist
	bash requirements/release_check.sh $(PYTHON) dist/kpdet-*.whl $(TORCH)
