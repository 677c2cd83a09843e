"""Lazy, well-explained access to the optional ``ffcv`` package.

Only `pretrain.data.ffcv` modules touch ffcv, and only through `import_ffcv`, so the rest of
the package (and the torchvision loader) works on machines where ffcv cannot be built.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

import torch

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "FFCV is not installed. Install it with `pip install -e '.[ffcv]'` (or `pip install ffcv`, which pulls numba "
    "and opencv-python) after the system libraries it compiles against: `apt-get install libopencv-dev "
    "libturbojpeg0-dev pkg-config` (root), or `conda install -c conda-forge libjpeg-turbo opencv "
    "pkg-config` / a from-source build into a prefix with PKG_CONFIG_PATH set (no root); see docs/ffcv.md. "
    "Or select the torchvision loader: data.loader=torchvision."
)


def ffcv_available() -> bool:
    """True when ``import ffcv`` works here (the result of a real import attempt)."""
    try:
        import_ffcv()
    except ImportError:
        return False
    return True


def import_ffcv() -> ModuleType:
    """Import ffcv, keeping torch's intra-op thread count as it was.

    ffcv's Compiler calls ``torch.set_num_threads`` at import time (and whenever a loader
    starts an epoch); the caller's setting is restored here.

    Raises:
        ImportError: ffcv (or one of its compiled dependencies) is missing, with the install hint.
    """
    threads = torch.get_num_threads()
    try:
        module = importlib.import_module("ffcv")
        importlib.import_module("ffcv.loader")
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} (import failed: {err})") from err
    finally:
        torch.set_num_threads(threads)
    return module


def decoding_threads(num_workers: int) -> int:
    """Decoding threads: at least 1 and at most numba's pool size (numba rejects more)."""
    import numba

    if num_workers > numba.config.NUMBA_NUM_THREADS:
        log.info("using %d FFCV decoding threads (numba's limit here), not %d",
                 numba.config.NUMBA_NUM_THREADS, num_workers)
    return max(1, min(int(num_workers), numba.config.NUMBA_NUM_THREADS))
