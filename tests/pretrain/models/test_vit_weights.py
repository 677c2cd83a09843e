"""Weight loading (timm / DINO / iBOT / our checkpoints) and export to timm."""

from __future__ import annotations

import argparse
import fractions
import logging

import pytest
import timm
import torch

from pretrain.models import (
    CheckpointError,
    DINOHead,
    create_model,
    create_model_from_checkpoint,
    export_to_timm,
    load_pretrained,
    timm_kwargs,
)


@pytest.fixture(scope="module")
def timm_vit_s():
    torch.manual_seed(1)
    return timm.create_model("vit_small_patch16_224", pretrained=False).eval()


def _photo() -> torch.Tensor:
    """A real photo (scikit-image's astronaut), 224 x 224, ImageNet-normalised, (1, 3, 224, 224)."""
    from skimage.data import astronaut

    img = torch.from_numpy(astronaut()).permute(2, 0, 1)[None].float() / 255.0
    img = torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear", antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (img - mean) / std


def _timm_pooled(model, x):
    return model.forward_head(model.forward_features(x), pre_logits=True)


@pytest.mark.slow
def test_timm_parity_and_export_round_trip(timm_vit_s):
    ours = create_model("vit_small", patch_size=16, img_size=224).eval()
    report = load_pretrained(ours, timm_vit_s.state_dict())
    assert report.complete and report.unexpected == [] and report.loaded == len(ours.state_dict())
    x = torch.cat([_photo(), torch.randn(1, 3, 224, 224)])
    with torch.no_grad():
        diff = (ours(x) - _timm_pooled(timm_vit_s, x)).abs().max().item()
    assert diff < 1e-4
    back = timm.models.vision_transformer.VisionTransformer(**timm_kwargs(ours)).eval()
    back.load_state_dict(export_to_timm(ours), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(_timm_pooled(back, x), ours(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kwargs", [{"num_registers": 2}, {"pooling": "gap", "pos_embed": "sincos"}])
def test_export_round_trip_with_registers_and_gap(kwargs):
    ours = create_model("vit_pico", img_size=32, patch_size=8, **kwargs).eval()
    back = timm.models.vision_transformer.VisionTransformer(**timm_kwargs(ours)).eval()
    back.load_state_dict(export_to_timm(ours), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(_timm_pooled(back, x), ours(x), atol=1e-5, rtol=1e-5)
    again = create_model("vit_pico", img_size=32, patch_size=8, **kwargs).eval()
    report = load_pretrained(again, back.state_dict())
    assert report.complete
    with torch.no_grad():
        torch.testing.assert_close(again(x), ours(x))


def test_export_refuses_manifold_key():
    with pytest.raises(ValueError, match="manifold|timm has only standard"):
        export_to_timm(create_model("vit_pico", img_size=32, patch_size=8, key_variant="vanillak"))


def _dino_style_checkpoint(src):
    backbone = {f"module.backbone.{k}": v for k, v in src.state_dict().items()}
    head = {f"module.head.{k}": v for k, v in DINOHead(128, 16, hidden_dim=32, bottleneck_dim=8).state_dict().items()}
    teacher = {k.replace("module.", ""): v + 1.0 for k, v in backbone.items()}
    # DINO keeps its argparse arguments in the checkpoint: weights_only must still accept it
    return {"student": {**backbone, **head}, "teacher": teacher, "epoch": 3, "args": argparse.Namespace(arch="x")}


def test_dino_checkpoint_prefixes_heads_and_which(tmp_path):
    src = create_model("vit_pico", img_size=32, patch_size=8)
    path = tmp_path / "checkpoint.pth"
    torch.save(_dino_style_checkpoint(src), path)
    student = create_model("vit_pico", img_size=32, patch_size=8)
    report = load_pretrained(student, path, which="student")
    assert report.complete and report.unexpected == []  # head keys dropped silently
    torch.testing.assert_close(student.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)
    teacher = create_model("vit_pico", img_size=32, patch_size=8)
    load_pretrained(teacher, path)  # default: the teacher
    torch.testing.assert_close(teacher.cls_token, src.cls_token + 1.0)


def test_ibot_state_dict_entry_and_masked_embed(tmp_path):
    src = create_model("vit_pico", img_size=32, patch_size=8, masked_im_modeling=True)
    sd = {k: v for k, v in src.state_dict().items() if k != "mask_token"}
    sd["masked_embed"] = torch.full((1, 128), 0.5)
    path = tmp_path / "ibot.pth"
    torch.save({"state_dict": sd}, path)
    model = create_model("vit_pico", img_size=32, patch_size=8, masked_im_modeling=True)
    assert load_pretrained(model, path).complete
    assert torch.all(model.mask_token == 0.5)


def test_our_checkpoint_format_and_rebuild(tmp_path):
    kwargs = {"img_size": 32, "patch_size": 8, "pooling": "simpool", "simpool_gamma": 1.25,
              "key_variant": "vanillak", "num_charts": 2, "extra_img_sizes": (16,)}
    student = create_model("vit_pico", **kwargs)
    teacher = create_model("vit_pico", **kwargs)
    head = DINOHead(128, 16, hidden_dim=32, bottleneck_dim=8)

    def net(backbone):
        return {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
                **{f"head.{k}": v for k, v in head.state_dict().items()}}

    # what the trainer records: create_model adds the numeric options (pos_embed_interp, ...)
    ckpt = {"format": "attmask-ssl/1", "model": {"name": "vit_pico", "kwargs": student.model_kwargs},
            "student": net(student), "teacher": net(teacher), "step": 7}
    path = tmp_path / "ckpt.pt"
    torch.save(ckpt, path)
    model, report = create_model_from_checkpoint(path, which="teacher")
    assert report.complete and report.unexpected == []
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), teacher.eval()(x))
    with pytest.raises(CheckpointError, match="no 'missing' state dict"):
        load_pretrained(model, ckpt, which="missing")


def test_plain_state_dict_cannot_rebuild_arch(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save(create_model("vit_pico", img_size=32, patch_size=8).state_dict(), path)
    with pytest.raises(CheckpointError, match="create_model"):
        create_model_from_checkpoint(path)


def test_pos_embed_resampled_and_cls_row_dropped_for_simpool(caplog):
    src = create_model("vit_pico", img_size=64, patch_size=8)  # 8x8 grid + [CLS]
    dst = create_model("vit_pico", img_size=32, patch_size=8, pooling="simpool")  # 4x4, no [CLS]
    with caplog.at_level(logging.INFO, logger="pretrain.models.weights"):
        report = load_pretrained(dst, src.state_dict())
    assert dst.pos_embed.shape == (1, 16, 128)
    assert any("resampled" in n for n in report.notes) and any("dropped 1 prefix" in n for n in report.notes)
    assert report.unexpected == ["cls_token"]
    assert sorted(report.missing) == sorted(k for k in dst.state_dict() if k.startswith("simpool."))
    assert "cls_token" in caplog.text and "simpool.wq.weight" in caplog.text


def test_shape_mismatch_is_reported_not_loaded(caplog):
    src = create_model("vit_pico", img_size=32, patch_size=8)
    dst = create_model("vit_pico", img_size=32, patch_size=4)
    before = dst.patch_embed.proj.weight.clone()
    with caplog.at_level(logging.WARNING, logger="pretrain.models.weights"):
        report = load_pretrained(dst, src.state_dict())
    assert ("patch_embed.proj.weight", (128, 3, 8, 8), (128, 3, 4, 4)) in report.mismatched
    assert torch.equal(dst.patch_embed.proj.weight, before) and not report.complete
    assert "shape mismatch for patch_embed.proj.weight" in caplog.text


def test_truncated_file_error_names_the_file(tmp_path):
    path = tmp_path / "broken.pth"
    torch.save(create_model("vit_pico", img_size=32, patch_size=8).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="broken.pth.*truncated or corrupt"):
        load_pretrained(create_model("vit_pico", img_size=32, patch_size=8), path)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_pretrained(create_model("vit_pico"), tmp_path / "nope.pth")


def test_unsafe_pickles_are_refused(tmp_path):
    path = tmp_path / "unsafe.pth"
    sd = create_model("vit_pico", img_size=32, patch_size=8).state_dict()
    torch.save({"model": sd, "obj": fractions.Fraction(1, 3)}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_pretrained(create_model("vit_pico", img_size=32, patch_size=8), path)


def test_standard_weights_seed_query_and_value_of_manifold_key_model():
    src = create_model("vit_pico", img_size=32, patch_size=8)
    dst = create_model("vit_pico", img_size=32, patch_size=8, key_variant="kua")
    report = load_pretrained(dst, src.state_dict())
    assert report.unexpected == [] and report.mismatched == []
    assert all(".attn.key." in k for k in report.missing)
    w = src.blocks[1].attn.qkv.weight
    torch.testing.assert_close(dst.blocks[1].attn.qv.weight, torch.cat([w[:128], w[256:]]))
