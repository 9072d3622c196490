"""The team's reference values (../shared/loss-fixtures): value and gradient of every case."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT

FIXTURES = ROOT.parent / "shared" / "loss-fixtures"


@pytest.mark.skipif(not (FIXTURES / "check_losses.py").exists(), reason="../shared/loss-fixtures not present")
def test_shared_loss_fixtures_pass():
    command = [sys.executable, str(FIXTURES / "check_losses.py"), ".", "--fixtures", str(FIXTURES)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0 and summary.endswith(" 0 failed"), done.stdout + done.stderr
    assert int(summary.split()[0]) >= 13  # every case ran
