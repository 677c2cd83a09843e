"""The one builder: config keys reach the objects they configure."""

from __future__ import annotations

import inspect

import pytest

from pretrain.build import backbone_kwargs, build_loss, build_network, crop_spec
from pretrain.config import PretrainConfig, load_config
from pretrain.models.vit import VisionTransformer

TINY = ["model.name=vit_pico", "model.patch_size=4", "head.out_dim=16", "head.patch_out_dim=16",
        "head.hidden_dim=32", "head.bottleneck_dim=8", "data.global_size=16", "data.local_size=8"]
ACCEPTED = inspect.signature(VisionTransformer.__init__).parameters


def test_number_of_global_crops_reaches_the_crops_and_the_loss():
    cfg = load_config(PretrainConfig, None, [*TINY, "data.n_global=3", "data.n_local=4"])
    assert crop_spec(cfg).n_global == 3
    loss = build_loss(cfg)
    assert loss.cls.n_pairs == 3 * (3 + 4) - 3


@pytest.mark.parametrize("key,value", [("attention", "explicit"), ("pos_embed_interp", "exact")])
def test_new_backbone_options_are_passed_once_the_backbone_takes_them(key, value):
    cfg = load_config(PretrainConfig, None, [*TINY, f"model.{key}={value}"])
    kwargs = backbone_kwargs(cfg, 0.0)
    if key not in ACCEPTED:
        assert key not in kwargs  # an older backbone: not passed (it would raise)
        pytest.skip(f"VisionTransformer does not take {key!r} yet")
    assert kwargs[key] == value
    assert build_network(cfg, student=False).backbone.model_kwargs[key] == value
