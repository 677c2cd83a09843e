"""Exact top-k cosine-similarity search for the k-NN evaluator: faiss (GPU or CPU) or torch.

Every backend answers the same question: for each query (test) feature, the ``k`` training
features with the largest cosine similarity, sorted best first (DINO's k-NN protocol, Caron et
al. 2021). Training features are L2-normalised once, block by block, while the index is built;
queries are normalised per chunk.

Memory stays bounded whatever the set sizes: callers feed queries in chunks, and the torch
backend also walks the training set in blocks, keeping only a running top-k per query, so it
never materialises a (test x train) similarity matrix (the cause of DINO issue #161). faiss'
exhaustive search blocks internally in the same way.

Backends:
    ``faiss_gpu``: faiss GpuIndexFlatIP (needs a faiss build with GPUs, e.g. faiss-gpu-cu12).
    ``faiss_cpu``: faiss IndexFlatIP.
    ``torch``:     blocked matmul + topk on any torch device.
    ``auto``:      faiss_gpu if faiss sees a GPU; else torch on a CUDA device; else faiss_cpu
                   when faiss is installed (measured not slower than torch on CPU, see
                   benchmarks/knn/results/knn_backends.md); else torch.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import torch

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "faiss_gpu", "faiss_cpu", "torch")


class Searcher(Protocol):
    """An index over the training features, queried chunk by chunk."""

    name: str

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k neighbours of raw ``queries`` (Q, D) by cosine.

        Returns:
            Similarities (Q, k) float32 sorted best first and indices (Q, k) int64, on CPU.
        """
        ...


def _faiss():
    """faiss or None: the evaluator works without it (torch backend)."""
    try:
        import faiss  # optional dependency: the torch backend works without it
    except ImportError:
        return None
    return faiss


def faiss_num_gpus() -> int:
    """GPUs visible to the installed faiss (0 for faiss-cpu or without faiss)."""
    faiss = _faiss()
    if faiss is None or not hasattr(faiss, "get_num_gpus"):
        return 0
    return int(faiss.get_num_gpus())


def available_backends() -> list[str]:
    """The concrete backends usable in this environment."""
    out = []
    if faiss_num_gpus() > 0:
        out.append("faiss_gpu")
    if _faiss() is not None:
        out.append("faiss_cpu")
    return out + ["torch"]


def resolve_backend(name: str, device: torch.device | str = "cpu") -> str:
    """Map ``auto`` to a concrete backend and check that a requested one is usable.

    Args:
        name: One of :data:`BACKENDS`.
        device: Where the torch backend would run; a CUDA device makes torch the pick when faiss has no GPU.

    Raises:
        ValueError: Unknown name, or a backend that this environment cannot run (says what to install).
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown k-NN backend {name!r}; choose one of {', '.join(BACKENDS)}")
    usable = available_backends()
    if name == "auto":
        if "faiss_gpu" in usable:
            return "faiss_gpu"
        if torch.device(device).type == "cuda":
            return "torch"
        return "faiss_cpu" if "faiss_cpu" in usable else "torch"
    if name not in usable:
        hint = ("install faiss-gpu-cu12 instead of faiss-cpu (never both)" if name == "faiss_gpu"
                else "pip install faiss-cpu")
        raise ValueError(f"k-NN backend {name!r} is not available here ({hint}); usable: {', '.join(usable)}")
    return name


_NORM_BLOCK = 65536


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm, float32 (B, D); all-zero rows stay zero."""
    return torch.nn.functional.normalize(x.float(), dim=1)


def _blocks(train: torch.Tensor | np.ndarray):
    """Normalised float32 blocks of the training features, without copying the whole set twice."""
    for start in range(0, train.shape[0], _NORM_BLOCK):
        block = train[start:start + _NORM_BLOCK]
        block = torch.from_numpy(np.asarray(block)) if isinstance(block, np.ndarray) else block
        yield l2_normalize(block)


class TorchSearcher:
    """Blocked exact search with torch: memory O(query_chunk x (train_block + k)) beyond the features.

    The training features are not copied on the CPU: each block's similarities are divided by
    the rows' norms (one float per row kept), so an (N, D) float32 array or memory map is used
    in place. On an accelerator the features are copied there once.

    Args:
        train: Training features (N, D), tensor or numpy array (a memory map works too).
        device: Where the matmuls run.
        train_block: Training rows per block; None sizes blocks so that one (Q, block) similarity
            tile holds about ``tile_elems`` floats.
        tile_elems: Budget of the similarity tile when ``train_block`` is None (16 Mi floats = 64 MiB).
    """

    name = "torch"

    def __init__(self, train: torch.Tensor | np.ndarray, device: torch.device | str = "cpu",
                 train_block: int | None = None, tile_elems: int = 16 * 2**20) -> None:
        self.device = torch.device(device)
        self.train_block = train_block
        self.tile_elems = tile_elems
        data = torch.from_numpy(np.asarray(train)) if isinstance(train, np.ndarray) else train.detach()
        self.train = data.cpu() if self.device.type == "cpu" else data.to(self.device, torch.float32)
        norms = [self.train[s:s + _NORM_BLOCK].float().norm(dim=1) for s in range(0, len(self.train), _NORM_BLOCK)]
        # Same zero-row convention as F.normalize: divide by max(norm, 1e-12).
        self.inv_norm = 1.0 / torch.cat(norms).clamp_min(1e-12)

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        q = l2_normalize(queries.to(self.device))
        n = self.train.shape[0]
        k = min(k, n)
        block_rows = self.train_block or max(4 * k, self.tile_elems // max(1, q.shape[0]))
        best_sim = torch.empty(q.shape[0], 0, device=self.device)
        best_idx = torch.empty(q.shape[0], 0, dtype=torch.int64, device=self.device)
        for start in range(0, n, block_rows):
            block = self.train[start:start + block_rows].float()
            sim = (q @ block.T).mul_(self.inv_norm[start:start + block_rows])  # (Q, B) cosine
            kb = min(k, sim.shape[1])
            s, i = sim.topk(kb, dim=1, largest=True, sorted=False)
            if best_sim.shape[1] == 0:
                best_sim, best_idx = s, i + start
                continue
            # Merge the running top-k with this block's top-k: a (Q, 2k) topk, cheap.
            merged_sim = torch.cat([best_sim, s], dim=1)
            merged_idx = torch.cat([best_idx, i + start], dim=1)
            best_sim, pos = merged_sim.topk(k, dim=1, largest=True, sorted=False)
            best_idx = merged_idx.gather(1, pos)
        best_sim, order = best_sim.sort(dim=1, descending=True, stable=True)
        return best_sim.float().cpu(), best_idx.gather(1, order).cpu()


class FaissSearcher:
    """Exact inner-product search with faiss IndexFlatIP, on CPU or on one GPU.

    Args:
        train: Training features (N, D), tensor or numpy array.
        gpu: Put the index on GPU 0 (needs a faiss build with GPU support).
    """

    def __init__(self, train: torch.Tensor, gpu: bool = False) -> None:
        faiss = _faiss()
        if faiss is None:
            raise ValueError("faiss is not installed: pip install faiss-cpu, or use backend=torch")
        index = faiss.IndexFlatIP(int(train.shape[1]))
        if gpu:
            self._resources = faiss.StandardGpuResources()  # must outlive the index
            index = faiss.index_cpu_to_gpu(self._resources, 0, index)
        for block in _blocks(train):
            index.add(np.ascontiguousarray(block.detach().cpu().numpy()))
        self.index = index
        self.name = "faiss_gpu" if gpu else "faiss_cpu"

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        q = np.ascontiguousarray(l2_normalize(queries.detach().cpu()).numpy())
        k = min(k, self.index.ntotal)
        sim, idx = self.index.search(q, k)
        return torch.from_numpy(sim), torch.from_numpy(idx.astype(np.int64))


def build_searcher(train: torch.Tensor | np.ndarray, backend: str = "auto", device: torch.device | str = "cpu",
                   train_block: int | None = None) -> Searcher:
    """An index over normalised training features (N, D) for the chosen backend.

    Args:
        train: Training features (N, D), any float dtype; normalised here.
        backend: One of :data:`BACKENDS`; ``auto`` picks as described in the module docstring.
        device: Torch device for the torch backend.
        train_block: Torch backend block size (rows); None keeps the similarity tile near 64 MiB.
    """
    name = resolve_backend(backend, device)
    log.info("k-NN backend: %s (requested %s)", name, backend)
    if name == "torch":
        return TorchSearcher(train, device, train_block)
    return FaissSearcher(train, gpu=name == "faiss_gpu")
