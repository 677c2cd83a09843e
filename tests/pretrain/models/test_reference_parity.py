"""Parity with the reference implementations (issue 11): heads, SimPool beta, position resampling,
reference-layout checkpoints, and what our older checkpoints keep."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pretrain.models import (
    DINOHead,
    create_model,
    create_model_from_checkpoint,
    iBOTHead,
    load_pretrained,
)
from pretrain.models.pos_embed import resample_patch_pos_embed
from pretrain.models.teacher_student import (
    build_multicrop_network,
    infer_patch_head_layout,
)

# ---------------------------------------------------------------- position-table resampling


def _dino_interpolate_pos_encoding(pos_embed: torch.Tensor, patch: int, w: int, h: int) -> torch.Tensor:
    """DINO's ``VisionTransformer.interpolate_pos_encoding`` restated line by line (w, h as DINO
    names them: ``B, nc, w, h = x.shape``, so w is the image height)."""
    npatch = (w // patch) * (h // patch)
    n = pos_embed.shape[1] - 1
    if npatch == n and w == h:
        return pos_embed
    class_pos_embed = pos_embed[:, 0]
    patch_pos_embed = pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    w0, h0 = w // patch + 0.1, h // patch + 0.1
    patch_pos_embed = F.interpolate(
        patch_pos_embed.reshape(1, int(math.sqrt(n)), int(math.sqrt(n)), dim).permute(0, 3, 1, 2),
        scale_factor=(w0 / math.sqrt(n), h0 / math.sqrt(n)),
        mode="bicubic",
    )
    assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)


@pytest.mark.parametrize("hw", [(96, 96), (480, 480), (96, 160), (224, 224)])
def test_dino_mode_equals_the_reference_resampling(hw):
    model = create_model("vit_pico", img_size=224, patch_size=16)  # 14 x 14 table, as ViT-S/16
    assert model.pos_embed_interp == "dino"
    grid = (hw[0] // 16, hw[1] // 16)
    with torch.no_grad():
        ours = model._pos_embed_for(grid, torch.device("cpu"))
        ref = _dino_interpolate_pos_encoding(model.pos_embed, 16, *hw)
        exact = resample_patch_pos_embed(model.pos_embed[:, 1:], (14, 14), grid, mode="exact")
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)
    if hw == (224, 224):
        assert ours is model.pos_embed  # DINO's early return: the table itself
    else:
        assert (ours[:, 1:] - exact).abs().max() > 1e-3  # the old "exact" mode differs


def test_dino_mode_reaches_the_forward():
    dino = create_model("vit_pico", img_size=64, patch_size=8, depth=1).eval()
    exact = create_model("vit_pico", img_size=64, patch_size=8, depth=1, pos_embed_interp="exact").eval()
    exact.load_state_dict(dino.state_dict())
    with torch.no_grad():
        x = torch.randn(1, 3, 40, 40)
        assert (dino(x) - exact(x)).abs().max() > 1e-4  # resampled table: the modes differ
        x = torch.randn(1, 3, 64, 64)
        torch.testing.assert_close(dino(x), exact(x))  # the table's own grid: identical
    with pytest.raises(ValueError, match="pos_embed_interp"):
        create_model("vit_pico", pos_embed_interp="nearest")


# ---------------------------------------------------------------- heads


def test_one_layer_dino_head_is_a_bare_linear_and_loads_old_keys():
    head = DINOHead(32, 20, bottleneck_dim=8, nlayers=1)
    sd = head.state_dict()
    assert {"mlp.weight", "mlp.bias"} <= set(sd) and isinstance(head.mlp, torch.nn.Linear)
    old = {("mlp.0." + k[4:] if k.startswith("mlp.") else k): v for k, v in sd.items()}  # before issue 11
    other = DINOHead(32, 20, bottleneck_dim=8, nlayers=1)
    other.load_state_dict(old, strict=True)
    x = torch.randn(3, 32)
    torch.testing.assert_close(other(x), head(x))


def test_ibot_head_shares_the_mlp_and_counts_9_72m_parameters_for_vit_s():
    # mlp: 384*2048+2048 + 2048*2048+2048 + 2048*256+256 = 5,509,376
    # last_layer and last_layer2: 256*8192 (v) + 8192 (g) = 2,105,344 each
    head = iBOTHead(384, 8192, 8192)
    assert sum(p.numel() for p in head.parameters()) == 5_509_376 + 2 * 2_105_344 == 9_720_064
    # our layout before issue 11: a second full head (ViT-S: 2 * 7,614,720 = 15.23 M); small dims here
    backbone = create_model("vit_pico", img_size=16, patch_size=4)
    net = build_multicrop_network(backbone, 24, 12, hidden_dim=16, bottleneck_dim=8, patch_head_layout="separate")
    mlp = 128 * 16 + 16 + 16 * 16 + 16 + 16 * 8 + 8
    assert sum(p.numel() for p in net.head.parameters()) == mlp + 8 * 24 + 24
    assert sum(p.numel() for p in net.patch_head.parameters()) == mlp + 8 * 12 + 12
    shared = build_multicrop_network(backbone, 24, 12, hidden_dim=16, bottleneck_dim=8)
    assert sum(p.numel() for p in shared.head.parameters()) == mlp + (8 * 24 + 24) + (8 * 12 + 12)
    with pytest.raises(ValueError, match="shared_head=True needs patch_out_dim == out_dim"):
        iBOTHead(384, 8192, 4096, shared_head=True)
    with pytest.raises(ValueError, match="shared_head=True needs"):
        build_multicrop_network(create_model("vit_pico"), 64, 32, shared_head=True)


def test_ibot_head_outputs_match_the_reference_forward():
    head = iBOTHead(16, 12, 10, hidden_dim=32, bottleneck_dim=8)
    pooled, patches = torch.randn(3, 16), torch.randn(3, 5, 16)
    cls_logits, patch_logits = head.forward_tokens(pooled, patches)
    # iBOTHead.forward of the reference on x = [cls; patches]: mlp, normalize, two last layers
    z = F.normalize(head.mlp(torch.cat([pooled[:, None], patches], 1)), dim=-1)
    torch.testing.assert_close(cls_logits, head.last_layer(z[:, 0]))
    torch.testing.assert_close(patch_logits, head.last_layer2(z[:, 1:]))
    assert patch_logits.shape == (3, 5, 10)
    torch.testing.assert_close(head(pooled), cls_logits)


def test_old_shared_head_and_separate_patch_head_checkpoints_still_load():
    backbone = create_model("vit_pico", img_size=16, patch_size=4, masked_im_modeling=True)
    # before issue 11 a shared head was one DINOHead: keys head.mlp.*, head.last_layer.* only
    old_shared = {f"head.{k}": v for k, v in DINOHead(128, 24, hidden_dim=16, bottleneck_dim=8).state_dict().items()}
    new = build_multicrop_network(backbone, 24, 24, hidden_dim=16, bottleneck_dim=8, shared_head=True)
    new.head.load_state_dict({k[5:]: v for k, v in old_shared.items()}, strict=True)
    assert new.head.last_layer2 is new.head.last_layer
    # a separate full patch head (patch_head.*) needs the "separate" layout, which infer picks
    old_sd = build_multicrop_network(backbone, 24, 12, hidden_dim=16, bottleneck_dim=8,
                                     patch_head_layout="separate").state_dict()
    assert infer_patch_head_layout(old_sd) == "separate"
    assert infer_patch_head_layout(new.state_dict()) == "ibot"
    again = build_multicrop_network(backbone, 24, 12, hidden_dim=16, bottleneck_dim=8,
                                    patch_head_layout=infer_patch_head_layout(old_sd))
    again.load_state_dict(old_sd, strict=True)
    out = again.forward_global(torch.randn(2, 3, 16, 16))
    assert out.cls_logits.shape == (2, 24) and out.patch_logits.shape == (2, 16, 12)


# ---------------------------------------------------------------- reference-layout checkpoints


def _vit_s16_reference_keys(masked_embed: bool) -> dict[str, tuple[int, ...]]:
    """DINO / iBOT ``vision_transformer.py`` ViT-S/16 state-dict layout, written out by hand."""
    d, hidden = 384, 1536
    keys = {"cls_token": (1, 1, d), "pos_embed": (1, 197, d), "patch_embed.proj.weight": (d, 3, 16, 16),
            "patch_embed.proj.bias": (d,), "norm.weight": (d,), "norm.bias": (d,)}
    for i in range(12):
        b = f"blocks.{i}."
        keys.update({b + "norm1.weight": (d,), b + "norm1.bias": (d,), b + "attn.qkv.weight": (3 * d, d),
                     b + "attn.qkv.bias": (3 * d,), b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
                     b + "norm2.weight": (d,), b + "norm2.bias": (d,), b + "mlp.fc1.weight": (hidden, d),
                     b + "mlp.fc1.bias": (hidden,), b + "mlp.fc2.weight": (d, hidden), b + "mlp.fc2.bias": (d,)})
    if masked_embed:
        keys["masked_embed"] = (1, d)  # iBOT's mask token
    return keys


def _head_reference_keys(out_dim: int, patch_out_dim: int | None) -> dict[str, tuple[int, ...]]:
    """DINOHead (``patch_out_dim=None``) / iBOTHead layout with torch.nn.utils.weight_norm."""
    keys = {"mlp.0.weight": (2048, 384), "mlp.0.bias": (2048,), "mlp.2.weight": (2048, 2048),
            "mlp.2.bias": (2048,), "mlp.4.weight": (256, 2048), "mlp.4.bias": (256,),
            "last_layer.weight_g": (out_dim, 1), "last_layer.weight_v": (out_dim, 256)}
    if patch_out_dim is not None:
        keys.update({"last_layer2.weight_g": (patch_out_dim, 1), "last_layer2.weight_v": (patch_out_dim, 256)})
    return keys


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dino", "ibot"])
def test_reference_layout_checkpoints_load_with_nothing_missing(method):
    ibot = method == "ibot"
    # the real K (65536 DINO, 8192 iBOT) only scales last_layer; smaller K keeps the test fast
    out_dim, patch_dim = (1024, 512) if ibot else (2048, None)
    gen = torch.Generator().manual_seed(0)
    keys = {**{f"backbone.{k}": s for k, s in _vit_s16_reference_keys(ibot).items()},
            **{f"head.{k}": s for k, s in _head_reference_keys(out_dim, patch_dim).items()}}
    sd = {k: torch.randn(s, generator=gen) for k, s in keys.items()}
    ckpt = {"student": {f"module.{k}": v for k, v in sd.items()}, "teacher": sd, "epoch": 100}
    with torch.device("meta"):  # no random init: every tensor must come from the checkpoint
        backbone = create_model("vit_small", patch_size=16, img_size=224, masked_im_modeling=ibot)
    backbone.to_empty(device="cpu")
    report = load_pretrained(backbone, ckpt, which="student")
    assert report.complete and report.unexpected == [] and report.mismatched == []
    assert report.loaded == len(_vit_s16_reference_keys(ibot)) and backbone.pos_embed_interp == "dino"
    torch.testing.assert_close(backbone.blocks[11].attn.qkv.weight, sd["backbone.blocks.11.attn.qkv.weight"])
    net = build_multicrop_network(backbone, out_dim, patch_dim or out_dim, with_patch=ibot)  # iBOT: shared_head=False
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert missing == [] and unexpected == []
    v, g = sd["head.last_layer.weight_v"], sd["head.last_layer.weight_g"]
    torch.testing.assert_close(net.head.last_layer.weight, g * v / v.norm(dim=1, keepdim=True))
    if ibot:
        torch.testing.assert_close(net.head.mlp[4].weight, sd["head.mlp.4.weight"])
        assert net.head.last_layer2.weight.shape == (512, 256)


# ---------------------------------------------------------------- SimPool beta and old checkpoints


def test_simpool_beta_is_a_scalar_and_reference_beta_loads():
    model = create_model("vit_pico", img_size=16, patch_size=4, pooling="simpool", simpool_gamma=2.0)
    assert model.simpool.beta.shape == (1,)  # billpsomas/simpool sp.py: nn.Parameter(torch.tensor([0.0]))
    sd = {**model.state_dict(), "simpool.beta": torch.tensor([0.25])}
    report = load_pretrained(model, sd)
    assert report.complete and report.mismatched == []
    assert model.simpool.beta.item() == 0.25
    x = torch.randn(2, 5, 128)
    pooled, attn = model.simpool(x)
    v = model.simpool.norm_patches(x)
    ref = torch.einsum("bn,bnd->bd", attn, (v - v.amin(dim=(1, 2), keepdim=True) + 1e-6) ** 2).sqrt() + 0.25
    torch.testing.assert_close(pooled, ref)


def _old_checkpoint(tmp_path, **extra):
    """One of our checkpoints as written before issue 11: kwargs without the new options,
    exact position resampling and a per-channel SimPool beta."""
    kwargs = {"img_size": 32, "patch_size": 8, "pooling": "simpool", "simpool_gamma": 1.25, **extra}
    old = create_model("vit_pico", pos_embed_interp="exact", simpool_beta="channel", **kwargs).eval()
    with torch.no_grad():
        old.simpool.beta.copy_(torch.linspace(-0.5, 0.5, 128))
    sd = {f"backbone.{k}": v for k, v in old.state_dict().items()}
    path = tmp_path / "old.pt"
    torch.save({"format": "attmask-ssl/1", "model": {"name": "vit_pico", "kwargs": kwargs},
                "student": sd, "teacher": sd}, path)
    return old, path


def test_old_checkpoints_rebuild_with_exact_resampling_and_channel_beta(tmp_path):
    old, path = _old_checkpoint(tmp_path)
    model, report = create_model_from_checkpoint(path)
    assert report.complete and report.mismatched == []
    assert model.pos_embed_interp == "exact" and model.simpool.beta.shape == (128,)
    assert model.model_kwargs["pos_embed_interp"] == "exact" and model.model_kwargs["simpool_beta"] == "channel"
    x = torch.randn(2, 3, 48, 48)  # another grid than the table's: resampling matters
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), old(x))
    # load_pretrained into a default-built model adopts the checkpoint's options too
    fresh = create_model("vit_pico", img_size=32, patch_size=8, pooling="simpool", simpool_gamma=1.25).eval()
    report = load_pretrained(fresh, path)
    assert report.complete and fresh.simpool.beta.shape == (128,) and fresh.pos_embed_interp == "exact"
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), old(x))


def test_new_checkpoints_record_their_options():
    model = create_model("vit_pico", img_size=32, patch_size=8)
    assert model.model_kwargs["pos_embed_interp"] == "dino" and model.model_kwargs["simpool_beta"] == "scalar"
