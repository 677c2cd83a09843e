"""``python -m downstream.linear``: see :mod:`downstream.linear.cli`."""

from downstream.linear.cli import main

if __name__ == "__main__":
    main()
