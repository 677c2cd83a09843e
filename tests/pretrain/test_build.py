"""The one builder: config keys reach the objects they configure."""

from __future__ import annotations

import inspect

import pytest
import torch

from pretrain.build import backbone_kwargs, build_pretrain_loss, build_network, crop_spec
from pretrain.config import PretrainConfig
from pretrain.configuration import ConfigError, load_config
from pretrain.models.vit import VisionTransformer

TINY = ["model.name=vit_pico", "model.patch_size=4", "head.out_dim=16", "head.patch_out_dim=16",
        "head.hidden_dim=32", "head.bottleneck_dim=8", "data.global_size=16", "data.local_size=8"]
ACCEPTED = inspect.signature(VisionTransformer.__init__).parameters


def test_number_of_global_crops_reaches_the_crops_and_the_loss():
    cfg = load_config(PretrainConfig, None, [*TINY, "data.n_global=3", "data.n_local=4"])
    assert crop_spec(cfg).n_global == 3
    loss = build_pretrain_loss(cfg)
    assert loss.cls.n_pairs == 3 * (3 + 4) - 3


@pytest.mark.parametrize("key,value", [("attention", "explicit"), ("pos_embed_interp", "exact"),
                                       ("simpool_beta", "channel")])
def test_backbone_options_reach_the_backbone_and_its_recorded_kwargs(key, value):
    cfg = load_config(PretrainConfig, None, [*TINY, f"model.{key}={value}"])
    assert key in ACCEPTED
    assert backbone_kwargs(cfg, 0.0)[key] == value
    assert build_network(cfg, student=False).backbone.model_kwargs[key] == value


def test_ibot_head_without_sharing_adds_only_a_second_last_layer():
    """iBOT's shared_head=False: one MLP, ``last_layer`` and ``last_layer2`` (reference layout)."""
    cfg = load_config(PretrainConfig, None, [*TINY, "head.shared_head=false", "head.patch_out_dim=24"])
    keys = build_network(cfg, student=True).state_dict().keys()
    head_keys = sorted({k.split(".")[1] for k in keys if k.startswith("head.")})
    assert head_keys == ["last_layer", "last_layer2", "mlp"]
    assert not any(k.startswith("patch_head.") for k in keys)
    old = load_config(PretrainConfig, None, [*TINY, "head.shared_head=false",
                                              "head.patch_head_layout=separate"])
    assert any(k.startswith("patch_head.") for k in build_network(old, student=True).state_dict())


def test_compile_backbone_compiles_the_method_the_network_runs():
    """``run.compile`` must reach ``forward_features`` (``module.compile()`` only wraps ``forward``)."""
    import torch
    from torch._dynamo.utils import counters

    from pretrain.build import compile_backbone

    cfg = load_config(PretrainConfig, None, TINY)
    net = build_network(cfg, student=False)
    x = torch.randn(2, 3, 16, 16)
    expected = net.backbone.forward_features(x).pooled
    torch._dynamo.reset()
    counters.clear()
    compile_backbone(net.backbone, backend="eager")  # tracing only: no C++ build in the test
    got = net.forward_global(x).cls_logits
    assert counters["frames"]["ok"] > 0  # dynamo captured a frame of the network's path
    assert torch.allclose(net.backbone.forward_features(x).pooled, expected, atol=1e-6)
    assert got.shape == (2, 16)
    torch._dynamo.reset()


def test_augmentation_keys_reach_the_crop_recipe_and_default_to_dinos():
    """data.flip_p ... data.solarize_p configure MultiCropSpec; unset, they are DINO/iBOT's ImageNet recipe."""
    from pretrain.data.transforms import MultiCropSpec

    default = crop_spec(load_config(PretrainConfig, None, TINY))
    names = ("flip_p", "color_jitter", "jitter_p", "gray_p", "blur_p", "blur_sigma", "solarize_p")
    assert {n: getattr(default, n) for n in names} == {n: getattr(MultiCropSpec(), n) for n in names}
    assert (default.blur_p, default.blur_sigma, default.solarize_p) == ((1.0, 0.1, 0.5), (0.1, 2.0), 0.2)
    cfg = load_config(PretrainConfig, None, [*TINY, "data.flip_p=0", "data.color_jitter=[0.1,0.2,0,0]",
                                             "data.jitter_p=0.3", "data.gray_p=0", "data.blur_p=[0,0.5,0]",
                                             "data.blur_sigma=[0.1,0.5]", "data.solarize_p=0"])
    spec = crop_spec(cfg)
    assert (spec.flip_p, spec.color_jitter, spec.jitter_p, spec.gray_p) == (0.0, (0.1, 0.2, 0.0, 0.0), 0.3, 0.0)
    assert (spec.blur_p, spec.blur_sigma, spec.solarize_p) == ((0.0, 0.5, 0.0), (0.1, 0.5), 0.0)
    assert [v.blur_p for v in spec.views()[:3]] == [0.0, 0.5, 0.0]  # global 1, global 2, first local


def test_fashion_mnist_split_train_fit_pretrains_without_the_validation_images(fashion_mnist_root):
    """data.split=train_fit: the 50k images outside train_holdout, exactly those (batched loader)."""
    import numpy as np

    from pretrain.build import build_pretrain_data
    from pretrain.data.datasets import FashionMNIST
    from pretrain.distributed import DistInfo

    cfg = load_config(PretrainConfig, None, [*TINY, "data.dataset=fashion_mnist", "data.loader=batched",
                                             f"data.root={fashion_mnist_root}", "data.split=train_fit",
                                             "data.global_size=28", "data.local_size=12"])
    loader, _, _ = build_pretrain_data(cfg, DistInfo(0, 1, 0), torch.device("cpu"))
    fit = FashionMNIST(fashion_mnist_root, "train_fit", as_pil=False)
    holdout = FashionMNIST(fashion_mnist_root, "train_holdout", as_pil=False)
    assert len(loader.labels) == len(fit) == 50000 and len(holdout) == 10000
    assert torch.equal(loader.images[:, 0], torch.from_numpy(fit.images))
    assert np.bincount(loader.labels.numpy()).tolist() == [5000] * 10


@pytest.mark.parametrize("override,message", [
    (["data.split=train_fit"], "is a Fashion-MNIST split"),
    (["data.split=train_fit", "data.dataset=fashion_mnist", "data.loader=ffcv", "data.ffcv_path=x.beton"],
     "does not apply to data.loader=ffcv"),
    (["data.split=test"], "not a valid value"),
])
def test_data_split_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(PretrainConfig, None, override)
