"""Fetch a Debian data package without root (``apt-get download`` + ``dpkg -x``), with a cache.

Used for the real-photo fixtures (``labelme-examples``: three PASCAL VOC 2011 photos with VOC XML
boxes, instance PNGs and a COCO JSON) and for background photos (``mate-backgrounds``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["LABELME_EXAMPLES", "MATE_NATURE", "fetch_package"]

LABELME_EXAMPLES = ("labelme-examples", "usr/share/doc/labelme-examples/examples")
MATE_NATURE = ("mate-backgrounds", "usr/share/backgrounds/mate/nature")


def fetch_package(package: str, inner: str, dest: str | Path) -> Path:
    """Folder ``inner`` of ``package``: the system install, an earlier extraction under ``dest``, or a new one.

    Raises:
        RuntimeError: apt-get / dpkg missing or the download failed (the message says what to do).
    """
    system = Path("/") / inner
    if system.is_dir():
        return system
    dest = Path(dest).resolve()
    extracted = dest / inner
    if extracted.is_dir():
        return extracted
    missing = [t for t in ("apt-get", "dpkg") if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"{package} is not installed and {' and '.join(missing)} is missing: run "
                           f"`apt-get download {package} && dpkg -x {package}_*.deb {dest}` on a Debian machine")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{package}-") as tmp:
        log.info("downloading %s with apt-get", package)
        for cmd in (["apt-get", "download", package], None):
            if cmd is None:
                debs = sorted(Path(tmp).glob(f"{package}_*.deb"))
                if not debs:
                    raise RuntimeError(f"apt-get download {package} produced no .deb")
                cmd = ["dpkg", "-x", str(debs[-1]), str(dest)]
            res = subprocess.run(cmd, check=False, cwd=tmp, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"`{' '.join(cmd)}` failed ({res.returncode}; try `apt-get update`): "
                                   f"{res.stderr.strip()[-1000:]}")
    if not extracted.is_dir():
        raise RuntimeError(f"{package} did not contain {inner}")
    return extracted
