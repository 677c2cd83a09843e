"""Localization evaluators: attention maps, MaxBoxAcc V1/V2, PxAP, CorLoc (wsolevaluation, DINO, LOST).

Entry point: ``python -m downstream.localization`` (:mod:`downstream.localization.cli`, which exposes
``CONFIG``, ``run`` and ``main`` for the SLURM launcher). Docs: docs/localization.md.
"""
