"""``python -m downstream.features``: see :mod:`downstream.features.cli`."""

from downstream.features.cli import main

if __name__ == "__main__":
    main()
