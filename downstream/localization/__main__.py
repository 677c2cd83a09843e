"""``python -m downstream.localization``: see :mod:`downstream.localization.cli`."""

from downstream.localization.cli import main

if __name__ == "__main__":
    main()
