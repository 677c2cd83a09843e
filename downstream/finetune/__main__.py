"""``python -m downstream.finetune``: see :mod:`downstream.finetune.cli`."""

from downstream.finetune.cli import main

if __name__ == "__main__":
    main()
