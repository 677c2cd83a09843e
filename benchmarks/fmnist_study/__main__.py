"""``python -m benchmarks.fmnist_study``: see :mod:`benchmarks.fmnist_study.cli`."""

from benchmarks.fmnist_study.cli import main

if __name__ == "__main__":
    main()
