"""Frozen-backbone features of a labelled set, and feature files.

Command line: ``python -m downstream.features`` (:mod:`downstream.features.cli`: config, ``run``,
``main``); extraction: :mod:`downstream.features.extraction`; files: :mod:`downstream.features.files`.
"""
