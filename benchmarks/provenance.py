"""What every benchmark report records: the command as run, machine, library versions, load, date.

Imported by the scripts in this folder (run as ``python benchmarks/<name>.py``, so this folder is
on ``sys.path``). Imports nothing optional at module level: it also runs on machines without
ffcv / faiss (the GPU machine).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "torchvision", "ffcv", "numba", "opencv-python", "numpy", "Pillow", "faiss-cpu", "timm")


def command_line(argv: list[str] | None = None) -> str:
    """The command actually run (``sys.argv``), the script path made relative to the repository."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    if script.is_relative_to(REPO):
        argv[0] = str(script.relative_to(REPO))
    return " ".join(["python", *(shlex.quote(a) for a in argv)])


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution, or ``"absent"``."""
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def versions_line(names: tuple[str, ...] = PACKAGES) -> str:
    return ", ".join(f"{name} {v}" for name, v in package_versions(names).items())


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """CPU, core count, Python, and the GPU if torch sees one."""
    line = f"{cpu_name()}, nproc {os.cpu_count()}, Python {platform.python_version()}"
    try:
        import torch

        if torch.cuda.is_available():
            line += f", GPU {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    except ImportError:
        pass
    return line


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (the machine may be shared)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def utc_now() -> str:
    return f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"


def write_report(out: str | Path, result: dict, markdown: Callable[[dict], str]) -> str:
    """Writes ``out``.json (the result) and ``out``.md (``markdown(result)``), prints and returns the markdown."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    out.with_suffix(".md").write_text(text + "\n")
    print(text)
    return text
