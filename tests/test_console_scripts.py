"""Every console script of pyproject.toml names an importable main, and every command-line module has one."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_console_script_resolves_to_a_callable_main():
    for name, target in SCRIPTS.items():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), name


def test_every_command_line_module_has_a_console_script():
    targets = {t.partition(":")[0] for t in SCRIPTS.values()}
    for package in ("pretrain", "downstream", "launchers"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "__main__.py" or not re.search(r"^def main\(", path.read_text(), re.M):
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            assert module in targets, f"{module} has a main() but no console script in pyproject.toml"
