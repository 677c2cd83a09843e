"""Layer-wise lr decay groups on a real vit_pico classifier: ids, scales 0.75^(L+1-l), no-decay rule."""

from __future__ import annotations

import pytest
import torch

from downstream.finetune.classifier import Classifier
from downstream.finetune.layer_decay import layer_decay_groups, layer_id, set_lr_
from pretrain.models import create_model


@pytest.fixture()
def classifier() -> Classifier:
    return Classifier(create_model("vit_pico", img_size=32, patch_size=8), num_classes=3)


def _group_of(groups: list[dict], param: torch.Tensor) -> dict:
    return next(g for g in groups if any(p is param for p in g["params"]))


def test_layer_ids_by_hand():
    assert layer_id("backbone.patch_embed.proj.weight", 4) == 0
    assert layer_id("backbone.pos_embed", 4) == 0 and layer_id("backbone.cls_token", 4) == 0
    assert layer_id("backbone.blocks.0.attn.qkv.weight", 4) == 1
    assert layer_id("backbone.blocks.3.mlp.fc2.bias", 4) == 4
    assert layer_id("backbone.norm.weight", 4) == 5 and layer_id("head.weight", 4) == 5


def test_groups_scales_and_weight_decay(classifier: Classifier):
    groups = layer_decay_groups(classifier, num_blocks=4, weight_decay=0.05, decay=0.75)
    bb = classifier.backbone
    cases = [  # (parameter, expected lr scale = 0.75 ** (L + 1 - layer), decayed?)
        (bb.patch_embed.proj.weight, 0.75 ** 5, True), (bb.patch_embed.proj.bias, 0.75 ** 5, False),
        (bb.pos_embed, 0.75 ** 5, False), (bb.cls_token, 0.75 ** 5, False),
        (bb.blocks[0].attn.qkv.weight, 0.75 ** 4, True), (bb.blocks[0].norm1.weight, 0.75 ** 4, False),
        (bb.blocks[3].mlp.fc1.weight, 0.75, True), (bb.norm.weight, 1.0, False),
        (classifier.head.weight, 1.0, True), (classifier.head.bias, 1.0, False)]
    for param, scale, decayed in cases:
        g = _group_of(groups, param)
        assert g["lr_scale"] == pytest.approx(scale)
        assert g["weight_decay"] == (0.05 if decayed else 0.0)
    # every trainable parameter is in exactly one group
    assert sum(len(g["params"]) for g in groups) == len(list(classifier.parameters()))
    assert {g["layer"] for g in groups} == {0, 1, 2, 3, 4, 5}


def test_set_lr_multiplies_the_scale(classifier: Classifier):
    groups = layer_decay_groups(classifier, num_blocks=4, weight_decay=0.05, decay=0.5)
    opt = torch.optim.AdamW(groups, lr=1.0)
    set_lr_(opt, 2e-3)
    by_layer = {g["layer"]: g["lr"] for g in opt.param_groups}
    assert by_layer[5] == pytest.approx(2e-3) and by_layer[0] == pytest.approx(2e-3 * 0.5 ** 5)
    assert by_layer[2] == pytest.approx(2e-3 * 0.5 ** 3)
