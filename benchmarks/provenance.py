"""What every benchmark report records: the command as run, machine, library versions, load, date.

The one helper module shared by the benchmarks: each topic folder imports it as
``from benchmarks.provenance import ...`` (the scripts run as modules from the repository root:
``python -m benchmarks.<topic>.<script>``). Imports nothing optional at module level: it also runs
on machines without ffcv / faiss (the GPU machine).
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
    """The command actually run (``sys.argv``): ``python -m <module> ...`` when run as a module, else
    ``python <script> ...`` with the script path made relative to the repository."""
    argv = list(sys.argv if argv is None else argv)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        head = ["python", "-m", spec.name.removesuffix(".__main__")]
    else:
        script = Path(argv[0]).resolve()
        head = ["python", str(script.relative_to(REPO)) if script.is_relative_to(REPO) else argv[0]]
    return " ".join([*head, *(shlex.quote(a) for a in argv[1:])])


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
