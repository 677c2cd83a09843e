"""Background robustness (ImageNet-9 Backgrounds Challenge, BG-Gap) and AttMask's masked-image test.

Entry point: ``python -m downstream.robustness`` (:mod:`downstream.robustness.cli`: ``CONFIG``, ``run``,
``main``). Docs: docs/localization.md.
"""
