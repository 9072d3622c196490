# The two commands of README.md. PYTHON may point at another interpreter: make test PYTHON=python3.11
PYTHON ?= python
TORCH = torch==2.14.1 torchvision==0.29.1
DEMO_ARGS ?=

.PHONY: install install-dev demo test lint bench

install:
	$(PYTHON) -m pip install -q $(TORCH)
	$(PYTHON) -m pip install -q -e .

install-dev:
	$(PYTHON) -m pip install -q $(TORCH)
	$(PYTHON) -m pip install -q -e ".[dev]"

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
