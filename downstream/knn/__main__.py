"""``python -m downstream.knn``: see :mod:`downstream.knn.cli`."""

from downstream.knn.cli import main

if __name__ == "__main__":
    main()
