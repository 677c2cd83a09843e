"""FFCV data path: the ``.beton`` writer, the multi-crop pretraining loader, its decoder and numba
kernels, the evaluation loader, sample order, profiling and the lazy ``import_ffcv`` guard.

Only this package imports ffcv, and only lazily (through :func:`pretrain.data.ffcv.support.import_ffcv`),
so everything else works without it installed. Guide: docs/ffcv.md.
"""
