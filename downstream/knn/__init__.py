"""Weighted k-NN evaluation (DINO protocol) and few-shot k-NN.

Command line: ``python -m downstream.knn`` (:mod:`downstream.knn.cli`: config, ``run``, ``main``);
algorithms: :mod:`downstream.knn.weighted_knn` (``knn_classify``), :mod:`downstream.knn.fewshot`,
:mod:`downstream.knn.backends` (faiss-GPU / faiss-CPU / torch search).
"""
