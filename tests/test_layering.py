"""Imports flow one way (docs/ARCHITECTURE.md): a module imports only kpdet modules of a lower layer."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kpdet"
LAYER = {
    "errors": -1,  # UserError and run_cli: every module may raise a user error
    "registry": 0, "config": 0, "keypoints": 0,
    "codecs": 1, "losses": 1, "metrics": 1,
    "data": 2, "models": 2, "vis": 2,
    "build": 3, "predict": 3, "export": 3,
    "inference": 4,
    "engine": 5,
    "cli": 6, "__main__": 7,  # the `kpdet` command; python -m kpdet
}
FORBIDDEN = {  # extra rules beyond the layers
    "models": {"losses"},  # models return logits; the loss stays outside
}
NO_IMAGE_LIBS = {"codecs", "losses", "metrics"}  # pure tensor maths


def unit_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


MODULES = [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    unit = unit_of(path)
    for name in imports_of(path):
        parts = name.split(".")
        if parts[0] in ("cv2", "albumentations"):
            assert unit not in NO_IMAGE_LIBS, f"{path}: {unit} must not use {parts[0]}"
        if parts[0] != "kpdet" or len(parts) == 1 or parts[1] == unit:
            continue
        target = parts[1]
        assert target in LAYER, f"{path}: imports unknown kpdet module {name}; add it to LAYER"
        assert LAYER[target] < LAYER[unit], f"{path}: {unit} (layer {LAYER[unit]}) imports {name}"
        assert target not in FORBIDDEN.get(unit, ()), f"{path}: {unit} must not import {target}"


def test_every_unit_has_a_layer():
    assert {unit_of(p) for p in MODULES} <= set(LAYER)
