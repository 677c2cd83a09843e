"""`make test` provides what the tests need (issue 22 item 11): as root it installs the Debian packages whose
absence makes tests skip; here checked with a dry run (make -n executes nothing)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("target", ["test", "test-fast"])
def test_make_test_installs_fashion_mnist_system_wide_when_root(target):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    installs = [line for line in dry.stdout.splitlines() if re.search(r"for p in .*; do dpkg -s", line)]
    assert installs, f"`make {target}` does not run the apt step:\n{dry.stdout[:2000]}"
    # the package whose system install tests/pretrain/data/test_fashion_mnist.py skips without
    skipping = (REPO / "tests" / "pretrain" / "data" / "test_fashion_mnist.py").read_text()
    assert "dataset-fashion-mnist is not installed" in skipping
    assert all("dataset-fashion-mnist" in line.split(";")[0] for line in installs)
