"""Linear probe on frozen features.

Command line: ``python -m downstream.linear`` (:mod:`downstream.linear.cli`: config, ``run``, ``main``);
the fit (head grid, choice on a held-out split): :mod:`downstream.linear.probe` (``fit_probe``);
its feature batches: :mod:`downstream.linear.data`.
"""
