"""Locate or fetch Fashion-MNIST's IDX files without root rights.

Debian ships the data set as the package ``dataset-fashion-mnist`` (files under
/usr/share/datasets/fashion-mnist). Without root, ``apt-get download`` fetches the .deb and
``dpkg -x`` unpacks it into any folder.

Usage: ``python -m pretrain.data.fashion_mnist DEST`` prints the folder holding the files.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from pretrain.data.debian import download_package

log = logging.getLogger(__name__)

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
PACKAGE = "dataset-fashion-mnist"
FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)
_MANUAL = (
    "To get the files by hand: on a Debian/Ubuntu machine run `apt-get download {pkg}` and "
    "`dpkg -x {pkg}_*.deb DEST` (the files land in DEST/usr/share/datasets/fashion-mnist), or put "
    "{files} (each optionally .gz) from https://github.com/zalandoresearch/fashion-mnist into DEST."
).format(pkg=PACKAGE, files=", ".join(FILES))


def has_fashion_mnist(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds all four IDX files (raw or .gz)."""
    folder = Path(folder)
    return all((folder / name).is_file() or (folder / f"{name}.gz").is_file() for name in FILES)


def ensure_fashion_mnist(dest_dir: str | os.PathLike, system_dir: str | os.PathLike | None = SYSTEM_DIR) -> Path:
    """Return a folder with the Fashion-MNIST IDX files, downloading them only when needed.

    Looks in this order: ``system_dir`` (the Debian package's install location), ``dest_dir``
    itself, an earlier extraction ``dest_dir/usr/share/datasets/fashion-mnist``; otherwise runs
    ``apt-get download dataset-fashion-mnist`` in a temporary folder and ``dpkg -x`` into dest_dir.

    Args:
        dest_dir: Where to unpack the package when it must be downloaded.
        system_dir: System-wide install location to try first; None skips it.

    Returns:
        The folder that holds the four IDX files.

    Raises:
        RuntimeError: apt-get/dpkg are unavailable or the download fails (the message says how
            to get the files by hand).
    """
    dest = Path(dest_dir).resolve()  # dpkg runs in a temporary folder: a relative DEST would land there
    extracted = dest / SYSTEM_DIR.relative_to("/")
    for folder in ([Path(system_dir)] if system_dir is not None else []) + [dest, extracted]:
        if has_fashion_mnist(folder):
            log.info("Fashion-MNIST found in %s", folder)
            return folder
    download_package(PACKAGE, dest, hint=_MANUAL)
    if not has_fashion_mnist(extracted):
        raise RuntimeError(f"{PACKAGE} did not contain the IDX files in {extracted}. {_MANUAL}")
    log.info("Fashion-MNIST extracted to %s", extracted)
    return extracted


def main(argv: list[str] | None = None) -> None:
    """Command line: print the folder with the Fashion-MNIST files, fetching them into DEST if needed."""
    parser = argparse.ArgumentParser(prog="python -m pretrain.data.fashion_mnist", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", help="folder to unpack the Debian package into when it is not installed")
    parser.add_argument("--no-system", action="store_true", help=f"ignore {SYSTEM_DIR} and use DEST")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    print(ensure_fashion_mnist(args.dest, system_dir=None if args.no_system else SYSTEM_DIR))


if __name__ == "__main__":
    main()
