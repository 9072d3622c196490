"""The `kpdet` command: subcommands, shipped configs named without a path, tools/*.py as wrappers."""
import subprocess
import sys

import pytest

from kpdet.cli import COMMANDS
from kpdet.config import ConfigNotFoundError, find_config, load_config, shipped_configs
from tests.conftest import ROOT


def kpdet(*args: str, cwd=ROOT, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kpdet", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_help_lists_every_subcommand():
    done = kpdet("--help")
    assert done.returncode == 0
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ")}
    assert set(COMMANDS) <= listed
    assert {"train", "test", "infer", "export", "compare", "convert", "diagnose", "configs"} <= set(COMMANDS)


@pytest.mark.parametrize("tool, command", [("train", "train"), ("compare_losses", "compare"), ("study", "compare"),
                                           ("convert", "convert"), ("export", "export")])
def test_tools_are_wrappers_around_the_same_parser(tool, command):
    """tools/X.py --help prints exactly what `kpdet COMMAND --help` prints: one parser, not two."""
    script = subprocess.run([sys.executable, f"tools/{tool}.py", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert script.returncode == 0 and script.stdout == kpdet(command, "--help").stdout
    assert f"usage: kpdet {command}" in script.stdout


def test_shipped_configs_are_named_without_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the checkout: no configs/ folder here
    shipped = ROOT / "kpdet" / "configs"
    assert shipped_configs() == sorted(str(p.relative_to(shipped).with_suffix("")) for p in shipped.rglob("*.yaml"))
    for name in ("synthetic/focal", "synthetic/focal.yaml", "configs/synthetic/focal.yaml"):
        assert find_config(name) == shipped / "synthetic" / "focal.yaml"
    assert load_config("synthetic/mse").loss.type == "mse"
    mine = tmp_path / "synthetic" / "focal.yaml"  # a user's file of the same name wins over the shipped one
    mine.parent.mkdir()
    mine.write_text("loss: {type: mse}\n")
    assert load_config("synthetic/focal.yaml").loss.type == "mse"


def test_an_unknown_config_names_close_shipped_ones():
    with pytest.raises(ConfigNotFoundError, match="did you mean openfield/mse"):
        find_config("openfeld/mse")
    with pytest.raises(FileNotFoundError):  # still a FileNotFoundError for callers that catch that
        find_config("no/such/config.yaml")


def test_configs_command_lists_and_shows(tmp_path):
    listing = kpdet("configs", cwd=tmp_path).stdout.splitlines()
    assert [line.split()[0] for line in listing] == shipped_configs()
    assert kpdet("configs", "openfield", cwd=tmp_path).stdout.count("\n") == len(
        [n for n in shipped_configs() if "openfield" in n])
    shown = kpdet("configs", "--show", "synthetic/mse", cwd=tmp_path).stdout
    assert shown == (ROOT / "kpdet" / "configs" / "synthetic" / "mse.yaml").read_text()


def test_user_errors_are_one_or_two_lines_with_status_2(tmp_path):
    """Outside a checkout, a shipped config whose data lives in the repository names the keys to set."""
    done = kpdet("train", "openfield/mse", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) <= 2 and "data.train.ann_file" in lines[0] and "data.train.img_dir=" in lines[-1]
    typo = kpdet("train", "synthetic/focal", "train.epochz=1", cwd=tmp_path)
    assert typo.returncode == 2 and "train.epochz" in typo.stderr and "epochs" in typo.stderr
    debug = kpdet("train", "synthetic/focal", "train.epochz=1", "--debug", cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr
