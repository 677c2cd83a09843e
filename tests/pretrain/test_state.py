"""Run state: deterministic re-seeding when a resumed run has another number of processes."""

from __future__ import annotations

import random

import numpy as np
import torch

from pretrain.state import reseed


def draws(seed: int, rank: int, step: int) -> tuple:
    gen = torch.Generator()
    reseed(seed, rank, step, gen)
    return (torch.rand(3).tolist(), np.random.rand(2).tolist(), random.random(),
            torch.rand(2, generator=gen).tolist())


def test_reseed_is_a_function_of_seed_rank_and_step():
    assert draws(0, 1, 7) == draws(0, 1, 7)
    base = draws(0, 1, 7)
    for other in (draws(1, 1, 7), draws(0, 0, 7), draws(0, 1, 8)):
        assert all(a != b for a, b in zip(base, other))  # every stream moves: torch, numpy, python, masks
    assert base[0] != base[3]  # the mask generator is not the global torch stream
