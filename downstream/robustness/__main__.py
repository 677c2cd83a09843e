"""``python -m downstream.robustness``: see :mod:`downstream.robustness.cli`."""

from downstream.robustness.cli import main

if __name__ == "__main__":
    main()
