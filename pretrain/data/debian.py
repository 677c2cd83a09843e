"""Fetch a Debian data package without root: ``apt-get download`` + ``dpkg -x`` into a folder.

Real data that installs from Debian (Fashion-MNIST's ``dataset-fashion-mnist``, the VOC photos of
``labelme-examples``, ``mate-backgrounds``) is found where the package installs it, or in an
earlier extraction under a cache folder, or downloaded and unpacked there.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def download_package(package: str, dest: str | Path, hint: str = "") -> Path:
    """Unpack ``package`` into ``dest`` (files land under ``dest/usr/...``); returns ``dest``.

    Args:
        package: Debian package name.
        dest: Folder to unpack into (created; made absolute, since dpkg runs in a temporary folder).
        hint: Appended to every error, e.g. how to get the files by hand.

    Raises:
        RuntimeError: apt-get / dpkg missing, or the download or unpacking failed.
    """
    dest = Path(dest).resolve()
    missing = [tool for tool in ("apt-get", "dpkg") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"{package} is not installed and {' and '.join(missing)} is not available to "
                           f"download it: run `apt-get download {package} && dpkg -x {package}_*.deb {dest}` "
                           f"on a Debian machine. {hint}".strip())
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{package}-") as tmp:
        log.info("downloading %s with apt-get", package)
        _run(["apt-get", "download", package], tmp, hint)
        debs = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if not debs:
            raise RuntimeError(f"apt-get download {package} produced no .deb file. {hint}".strip())
        _run(["dpkg", "-x", str(debs[-1]), str(dest)], tmp, hint)
    return dest


def fetch_package(package: str, inner: str, dest: str | Path) -> Path:
    """Folder ``inner`` of ``package``: the system install, an earlier extraction under ``dest``, or a new one.

    Raises:
        RuntimeError: apt-get / dpkg missing, the download failed, or the package lacks ``inner``.
    """
    system = Path("/") / inner
    if system.is_dir():
        return system
    extracted = Path(dest).resolve() / inner
    if not extracted.is_dir():
        download_package(package, dest)
    if not extracted.is_dir():
        raise RuntimeError(f"{package} did not contain {inner}")
    return extracted


def _run(cmd: list[str], cwd: str, hint: str) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        again = " (try `apt-get update` first)" if cmd[0] == "apt-get" else ""
        raise RuntimeError(f"`{' '.join(cmd)}` failed with exit code {result.returncode}{again}: "
                           f"{result.stderr.strip()[-2000:]}\n{hint}".strip())
