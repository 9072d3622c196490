"""requirements/dev.lock and pyproject.toml agree: every requirement is locked, inside its range,
and capped at the locked (tested) version; requirements/lock.py's rewriting of those caps."""
import re
import sys

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "requirements"))
lock = pytest.importorskip("lock")  # needs tomllib: Python 3.11+

PINS = {lock.canonical(name): version for name, version in
        re.findall(r"^([^#=\s]+)==(\S+)$", (ROOT / "requirements" / "dev.lock").read_text(), re.M)}
PROJECT = lock.tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def test_every_requirement_is_locked_inside_its_range_and_capped_at_the_locked_version():
    reqs = [*PROJECT["dependencies"], *(r for extra in EXTRAS.values() for r in extra)]
    for req in map(Requirement, reqs):
        name = lock.canonical(req.name)
        if name == PROJECT["name"]:
            continue  # an extra naming kpdet's other extras
        assert name in PINS, f"pyproject.toml asks for {req}; requirements/dev.lock lacks it: run make lock"
        assert req.specifier.contains(PINS[name], prereleases=True), f"{req} excludes the locked {PINS[name]}"
        caps = [s.version for s in req.specifier if s.operator == "<="]
        assert caps == [PINS[name]], f"{req}: its cap must be the locked (tested) version {PINS[name]}"


def test_dev_extra_holds_what_the_tests_import():
    dev = {lock.canonical(Requirement(r).name) for r in EXTRAS["dev"]}
    assert {"pytest", "hypothesis", "ruff", "onnx", "onnxruntime", "submitit"} <= dev


def test_raise_caps_rewrites_only_the_cap():
    text = '"numpy>=1.24,<=2.4.6",  # arrays\n"Jinja2<=3.0"\n"tqdm>=4.66"\n'
    pins = {"numpy": "2.5.0", "jinja2": "3.1.6", "tqdm": "4.70.1"}
    assert lock.raise_caps(text, pins) == '"numpy>=1.24,<=2.5.0",  # arrays\n"Jinja2<=3.1.6"\n"tqdm>=4.66"\n'
    assert lock.canonical("typing_extensions") == lock.canonical("Typing.Extensions") == "typing-extensions"


def test_requirements_drop_caps_and_self_references():
    project = {"project": {"name": "kpdet", "dependencies": ["numpy>=1.24,<=2.4.6"],
                           "optional-dependencies": {"dev": ["kpdet[export]", "pytest>=7.4,<=9.2.0"]}}}
    assert lock.requirements(project) == ["numpy>=1.24", "pytest>=7.4"]
