"""Mixup / CutMix targets and boxes checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from downstream.finetune.mixup import MixupCutmix, cutmix_box, smooth_one_hot, soft_cross_entropy


class FixedDraws:
    """A generator stand-in returning chosen values: the hand examples need known draws."""

    def __init__(self, beta: float, uniform: float = 0.0, ints: tuple[int, ...] = (0, 0)) -> None:
        self._beta, self._uniform, self._ints = beta, uniform, list(ints)

    def beta(self, a: float, b: float) -> float:
        return self._beta

    def random(self) -> float:
        return self._uniform

    def integers(self, low: int, high: int) -> int:
        return self._ints.pop(0)


def test_smooth_one_hot_by_hand():
    t = smooth_one_hot(torch.tensor([2, 0]), num_classes=4, smoothing=0.1)
    assert torch.allclose(t[0], torch.tensor([0.025, 0.025, 0.925, 0.025]))
    assert torch.allclose(t.sum(1), torch.ones(2))


def test_cutmix_box_centre_and_clipped():
    # lam 0.75 on 8x8: sides int(8 * 0.5) = 4; centre (4, 4) -> rows 2..6, cols 2..6 (16 px = 1/4)
    assert cutmix_box(0.75, 8, 8, FixedDraws(0, ints=(4, 4))) == (2, 6, 2, 6)
    # centre in the corner: clipped to rows 0..2, cols 0..2 (4 px)
    assert cutmix_box(0.75, 8, 8, FixedDraws(0, ints=(0, 0))) == (0, 2, 0, 2)


def test_cutmix_pastes_the_box_and_corrects_lam():
    images = torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)])
    mix = MixupCutmix(num_classes=2, mixup_alpha=0.0, cutmix_alpha=1.0, smoothing=0.0)
    out, targets = mix(images, torch.tensor([0, 1]), FixedDraws(0.75, ints=(0, 0)))  # clipped 2x2 box
    assert out[0].sum() == 3 * 4 and out[1].sum() == 3 * (64 - 4)  # the box came from the other image
    lam = 1 - 4 / 64
    assert torch.allclose(targets, torch.tensor([[lam, 1 - lam], [1 - lam, lam]]))


def test_mixup_blends_images_and_targets():
    images = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])
    mix = MixupCutmix(num_classes=3, mixup_alpha=0.8, cutmix_alpha=0.0, smoothing=0.3)
    out, targets = mix(images, torch.tensor([0, 2]), FixedDraws(0.6))
    assert torch.allclose(out[0], torch.full((3, 4, 4), 0.4)) and torch.allclose(out[1], torch.full((3, 4, 4), 0.6))
    on, off = 1 - 0.3 + 0.1, 0.1
    assert torch.allclose(targets[0], torch.tensor([0.6 * on + 0.4 * off, off, 0.6 * off + 0.4 * on]))
    assert torch.allclose(targets.sum(1), torch.ones(2))


def test_switch_and_prob_choose_the_kind():
    images = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    both = MixupCutmix(num_classes=2, prob=1.0, switch_prob=0.5, smoothing=0.0)
    # uniform 0.9 >= switch 0.5 -> mixup: every pixel blended
    out, _ = both(images, torch.tensor([0, 1]), FixedDraws(0.5, uniform=0.9))
    assert torch.allclose(out, torch.full_like(out, 0.5))
    never = MixupCutmix(num_classes=2, prob=0.0, smoothing=0.0)
    out, targets = never(images, torch.tensor([0, 1]), np.random.default_rng(0))
    assert torch.equal(out, images) and torch.equal(targets, torch.eye(2))


def test_soft_cross_entropy_equals_hard_on_one_hot():
    logits = torch.randn(5, 4)
    labels = torch.tensor([0, 3, 1, 2, 2])
    hard = torch.nn.functional.cross_entropy(logits, labels)
    assert soft_cross_entropy(logits, smooth_one_hot(labels, 4, 0.0)) == pytest.approx(float(hard), abs=1e-6)
