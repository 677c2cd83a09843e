"""``python -m downstream.segmentation``: see :mod:`downstream.segmentation.cli`."""

from downstream.segmentation.cli import main

if __name__ == "__main__":
    main()
