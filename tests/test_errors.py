"""Errors a user can read: one or two lines on stderr, the thing named with the nearest valid choice,
exit status 2, no traceback; --debug or KPDET_DEBUG=1 shows the traceback; bugs keep theirs."""
import errno
import os
import runpy
import subprocess
import sys

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from kpdet.config import Config, ConfigError
from kpdet.errors import UserError, as_user_error, did_you_mean, run_cli, short
from tests.conftest import ROOT, data_overrides


def fail(error):
    def fn():
        raise error
    return fn


def test_a_user_error_is_one_line_and_status_2(capsys, monkeypatch):
    monkeypatch.delenv("KPDET_DEBUG", raising=False)
    with pytest.raises(SystemExit) as done:
        run_cli(fail(ConfigError("train.epochs=-1 must be >= 1")))
    assert done.value.code == 2
    assert capsys.readouterr().err == "kpdet: error: train.epochs=-1 must be >= 1\n"
    assert run_cli(lambda: 42) == 42


def test_debug_or_kpdet_debug_reraises_and_bugs_keep_their_traceback(monkeypatch):
    monkeypatch.delenv("KPDET_DEBUG", raising=False)
    with pytest.raises(ConfigError):
        run_cli(fail(ConfigError("bad")), debug=True)
    monkeypatch.setenv("KPDET_DEBUG", "1")
    with pytest.raises(ConfigError):
        run_cli(fail(ConfigError("bad")))
    monkeypatch.delenv("KPDET_DEBUG")
    with pytest.raises(ZeroDivisionError):  # a bug, not the user's: full traceback
        run_cli(fail(ZeroDivisionError("oops")))


def test_library_errors_users_hit_become_user_errors():
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/train.json")
    assert str(as_user_error(missing)) == "/data/train.json: No such file or directory"
    full = OSError(errno.ENOSPC, "No space left on device", "/work/last.pt")
    assert str(as_user_error(full)).startswith("cannot write /work/last.pt: No space left on device (")
    schema = OmegaConf.structured(Config)
    with pytest.raises(ValidationError) as typed:
        schema.train.epochs = "three"
    assert str(as_user_error(typed.value)).startswith("config key 'train.epochs': Value 'three' of type")
    assert as_user_error(KeyError("epochs")) is None and as_user_error(OSError("no file name")) is None
    assert str(UserError("a 'quoted' message")) == "a 'quoted' message"  # unlike KeyError's repr


def test_messages_are_cut_to_two_lines_and_loader_worker_tracebacks_to_their_message():
    assert short("one\ntwo\nthree\nfour") == "one\ntwo (+2 more lines with --debug)"
    worker = ("Caught DatasetError in DataLoader worker process 0.\n"
              "Original Traceback (most recent call last):\n"
              '  File "x.py", line 1, in f\nkpdet.data.coco.DatasetError: cannot read image /d/1.jpg')
    assert short(worker) == "cannot read image /d/1.jpg"
    assert did_you_mean("focall", ["focal", "mse"]) == " (did you mean 'focal'?)"
    assert did_you_mean("zzz", ["focal", "mse"]) == ""


def tool(*args, debug=False):
    """Run a tools/ script as a user does -> (status, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("KPDET_DEBUG", None)
    done = subprocess.run([sys.executable, *args, *(["--debug"] if debug else [])], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stderr


def assert_readable(status, err, *named):
    assert status == 2, err
    assert len(err.strip().splitlines()) <= 2 and "Traceback" not in err, err
    assert err.startswith("kpdet: error: ") and all(n in err for n in named), err


def test_tools_print_a_mistyped_key_and_a_corrupt_checkpoint_without_traceback(tiny_synthetic, tmp_path):
    status, err = tool("tools/train.py", "configs/smoke.yaml", "train.epoch=3")
    assert_readable(status, err, "'train.epoch'", "'epochs'")
    status, err = tool("tools/train.py", "configs/smoke.yaml", "train.epoch=3", debug=True)
    assert status == 1 and "Traceback (most recent call last)" in err and "ConfigError" in err
    corrupt = tmp_path / "last.pt"
    corrupt.write_bytes(b"PK\x03\x04 cut short")
    status, err = tool("tools/test.py", "configs/smoke.yaml", str(corrupt), *data_overrides(tiny_synthetic))
    assert_readable(status, err, f"checkpoint {corrupt} is unreadable (truncated or corrupt?)")


@pytest.mark.parametrize("override, named", [
    ("loss.type=focall", ["unknown loss 'focall'", "(did you mean 'focal'?)"]),
    ("codec.type=udpp", ["unknown codec 'udpp'", "(did you mean 'udp'?)"]),
    ("data.train.ann_file=/no/t.json", ["data.train.ann_file: annotation file not found: /no/t.json"]),
    ("loss.alpah=3", ["has no parameter 'alpah' (did you mean 'alpha'?)"]),
])
def test_train_tool_names_unknown_names_and_missing_files(override, named, tiny_synthetic, tmp_path, capsys,
                                                          monkeypatch):
    """The same tool in this process (runpy, as `python tools/train.py` runs it): quicker than a process."""
    monkeypatch.delenv("KPDET_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["tools/train.py", "configs/smoke.yaml", *data_overrides(tiny_synthetic),
                                      f"work_dir={tmp_path}", override])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "tools" / "train.py"), run_name="__main__")
    assert_readable(done.value.code, capsys.readouterr().err, *named)
