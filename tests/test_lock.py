"""requirements/dev.lock and pyproject.toml agree: every requirement is locked and the locked version
satisfies it; pyproject declares lower bounds only (no `<`/`<=` caps: kpdet is a library)."""
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


def test_every_requirement_is_locked_and_the_locked_version_satisfies_it():
    reqs = [*PROJECT["dependencies"], *(r for extra in EXTRAS.values() for r in extra)]
    for req in map(Requirement, reqs):
        name = lock.canonical(req.name)
        if name == PROJECT["name"]:
            continue  # an extra naming kpdet's other extras
        assert name in PINS, f"pyproject.toml asks for {req}; requirements/dev.lock lacks it: run make lock"
        assert req.specifier.contains(PINS[name], prereleases=True), f"{req} excludes the locked {PINS[name]}"


def test_runtime_and_extras_have_no_upper_caps():
    """A cap would block a user's newer torch or numpy; exact versions belong to the lock."""
    reqs = [*PROJECT["dependencies"], *(r for extra in EXTRAS.values() for r in extra)]
    capped = [r for r in map(Requirement, reqs) if any(s.operator in ("<", "<=", "==", "~=")
                                                          for s in r.specifier)]
    assert capped == [], f"pyproject.toml caps {capped}: keep lower bounds (and `!=` with a reason)"


def test_dev_extra_holds_what_the_tests_import():
    dev = {lock.canonical(Requirement(r).name) for r in EXTRAS["dev"]}
    assert {"pytest", "hypothesis", "ruff", "onnx", "onnxruntime", "submitit", "timm"} <= dev


def test_requirements_merge_extras_and_drop_self_references():
    project = {"project": {"name": "kpdet", "dependencies": ["numpy>=1.24"],
                           "optional-dependencies": {"dev": ["kpdet[export]", "pytest>=7.4"]}}}
    assert lock.requirements(project) == ["numpy>=1.24", "pytest>=7.4"]
    assert lock.canonical("typing_extensions") == lock.canonical("Typing.Extensions") == "typing-extensions"
