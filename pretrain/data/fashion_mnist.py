"""Locate or fetch Fashion-MNIST's IDX files without root rights.

Debian ships the data set as the package ``dataset-fashion-mnist`` (files under
/usr/share/datasets/fashion-mnist). Without root, ``apt-get download`` fetches the .deb and
``dpkg -x`` unpacks it into any folder.

Also the validation split held out from the 60k training images (`holdout_split`: the splits
``train_fit`` / ``train_holdout`` of `pretrain.data.datasets.FashionMNIST`) and `write_train_subset`,
which writes a folder whose "train" files hold only chosen training images (a smaller
pretraining set for studies).

Usage: ``python -m pretrain.data.fashion_mnist DEST`` prints the folder holding the files.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np

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


# The validation split: 10k of the 60k training images, 1000 per class (stratified), chosen by a
# fixed seed once and for all so that every run, evaluator and sitting holds out the same images.
HOLDOUT_SIZE = 10000
HOLDOUT_SEED = 15


def holdout_split(labels: np.ndarray, size: int = HOLDOUT_SIZE, seed: int = HOLDOUT_SEED,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stratified hold-out: (fit indices, held-out indices), both sorted, disjoint, covering all.

    Each class c holds out ``count_c * size / N`` images, rounded down, the ``size`` left over going
    to the classes with the largest remainders (1000 per class for the balanced Fashion-MNIST train
    split): the last ones of a seeded random permutation of that class's indices. The same labels,
    size and seed always give the same split.

    Args:
        labels: (N,) int labels of the training split.
        size: Number of images to hold out (0 < size < N).
        seed: numpy ``default_rng`` seed of the permutation.

    Raises:
        ValueError: ``size`` outside (0, N).
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not 0 < size < n:
        raise ValueError(f"hold-out size {size} must be between 1 and {n - 1} (the split has {n} images)")
    perm = np.random.default_rng(seed).permutation(n)
    perm = perm[np.argsort(labels[perm], kind="stable")]  # grouped by class, random order within
    counts = np.unique(labels, return_counts=True)[1]
    quota = counts * size / n
    takes = np.floor(quota).astype(np.int64)
    extra = np.argsort(-(quota - takes), kind="stable")[:size - int(takes.sum())]
    takes[extra] += 1  # largest remainders first: exactly ``size`` in all
    held = []
    start = 0
    for count, take in zip(counts, takes):
        held.append(perm[start + count - take:start + count])
        start += count
    held_idx = np.sort(np.concatenate(held))
    fit = np.ones(n, dtype=bool)
    fit[held_idx] = False
    return np.flatnonzero(fit), held_idx


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as a raw (not gzipped) IDX file, readable by `datasets.read_idx`."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    tmp = Path(f"{path}.tmp")
    tmp.write_bytes(header + array.tobytes())
    tmp.replace(path)  # a reader never sees a half-written file


def write_train_subset(images: np.ndarray, labels: np.ndarray, dest: str | os.PathLike,
                       test_from: str | os.PathLike) -> Path:
    """A Fashion-MNIST folder whose "train" split is exactly ``images`` / ``labels``.

    The pretraining loaders read the split "train" of ``data.root``; pointing ``data.root`` at this
    folder pretrains on a chosen subset (e.g. 10k images of ``train_fit``). The "test" files are
    links to those in ``test_from``, so the folder is complete for `ensure_fashion_mnist`.

    Args:
        images: uint8 (N, 28, 28). labels: (N,) ints in 0..9.
        dest: Folder to create (files are replaced).
        test_from: Folder with the original t10k files.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    write_idx(dest / FILES[0], images)
    write_idx(dest / FILES[1], np.asarray(labels).astype(np.uint8))
    for name in FILES[2:]:
        src = next((p for p in (Path(test_from) / name, Path(test_from) / f"{name}.gz") if p.is_file()), None)
        if src is None:
            raise FileNotFoundError(f"{name}[.gz] not found in {test_from}: pass the folder of the full data set")
        link = dest / src.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(src.resolve())
    return dest


def has_fashion_mnist(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds all four IDX files (raw or .gz)."""
    return not missing_files(folder)


def missing_files(folder: str | os.PathLike) -> list[str]:
    """The IDX files (of :data:`FILES`) that ``folder`` holds neither raw nor gzipped."""
    folder = Path(folder)
    return [name for name in FILES if not ((folder / name).is_file() or (folder / f"{name}.gz").is_file())]


# The project's own data folders (as the demo, the Makefile and configs/pretrain/fmnist_*.yaml name them,
# relative to the repository or the working folder): the only places a download may unpack into.
PROJECT_DATA_DIRS: tuple[str, ...] = ("data", "data/fashion-mnist")
_REPO = Path(__file__).resolve().parents[2]


def is_project_data_dir(folder: str | os.PathLike) -> bool:
    """True for the project's own data folders (:data:`PROJECT_DATA_DIRS`), where a missing data set may be
    fetched; any other folder is the user's, and is never written into."""
    target = Path(folder).resolve()
    return any(target == (base / d).resolve() for base in (_REPO, Path.cwd()) for d in PROJECT_DATA_DIRS)


def ensure_fashion_mnist(dest_dir: str | os.PathLike, system_dir: str | os.PathLike | None = SYSTEM_DIR,
                         download: bool = True) -> Path:
    """Return a folder with the Fashion-MNIST IDX files, downloading them only when needed and allowed.

    Looks in this order: ``dest_dir`` itself, an earlier extraction
    ``dest_dir/usr/share/datasets/fashion-mnist`` (a folder the caller names is always read when it
    holds the files: a training subset written there is never swapped for the full set); then, only
    for a folder that may be fetched into (``download``), ``system_dir`` (the Debian package's install
    location); otherwise, with ``download``, runs ``apt-get download dataset-fashion-mnist`` in a
    temporary folder and ``dpkg -x`` into dest_dir.

    Args:
        dest_dir: Where the files are, or where to unpack the package when it must be downloaded.
        system_dir: System-wide install location to try first; None skips it.
        download: Fetch the package when the files are not found. Callers pass False for a folder
            the user named (see :func:`is_project_data_dir`): their folder is never written into.

    Returns:
        The folder that holds the four IDX files.

    Raises:
        FileNotFoundError: ``dest_dir`` (or its extraction) holds some of the files but not all, or
            ``download`` is False and the files are not there: the message names the missing files.
        RuntimeError: apt-get/dpkg are unavailable or the download fails (the message says how
            to get the files by hand).
    """
    dest = Path(dest_dir).resolve()  # dpkg runs in a temporary folder: a relative DEST would land there
    extracted = dest / SYSTEM_DIR.relative_to("/")
    for folder in (dest, extracted):
        if has_fashion_mnist(folder):
            log.info("Fashion-MNIST found in %s", folder)
            return folder
    for folder in (dest, extracted):
        missing = missing_files(folder)
        if len(missing) < len(FILES):  # a partial copy: never mixed with a download, never guessed around
            raise FileNotFoundError(
                f"Fashion-MNIST folder {folder} lacks {', '.join(f'{m}[.gz]' for m in missing)} (it holds the other "
                f"{len(FILES) - len(missing)} of {len(FILES)} files): put the missing file(s) there. {_MANUAL}")
    system = Path(system_dir) if system_dir is not None and has_fashion_mnist(system_dir) else None
    if not download:
        installed = f" The system-wide copy is in {system}: point the root there." if system is not None else ""
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {dest}: it holds none of {', '.join(FILES)} (raw or .gz). Put them there, "
            f"or fetch them into the project's data folder with `python -m pretrain.data.fashion_mnist data` and "
            f"point the root at data/.{installed} {_MANUAL}")
    if system is not None:  # the project's data folder, empty: the installed package serves
        log.info("Fashion-MNIST found in %s", system)
        return system
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
