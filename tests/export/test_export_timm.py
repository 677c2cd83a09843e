"""`--format timm`: timm's own create_model(pretrained=True) loads the file with every key and equal features."""

from __future__ import annotations

import pytest
import torch

timm = pytest.importorskip("timm")
from safetensors.torch import load_file  # noqa: E402

from pretrain.export.cli import main  # noqa: E402
from pretrain.export.to_timm import export_timm  # noqa: E402
from pretrain.models import create_model  # noqa: E402
from tests.tiny_checkpoint import write_checkpoint  # noqa: E402


def _timm_model(name: str, file, **kwargs) -> torch.nn.Module:
    return timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(file=str(file)),
                             **kwargs).eval()


@pytest.mark.parametrize("name,side,timm_name", [("vit_small", 32, "vit_small_patch16_224"),
                                                 ("vit_tiny", 224, "vit_tiny_patch16_224")])
def test_timm_loads_every_key_and_gives_identical_features(tmp_path, name, side, timm_name, capsys):
    ckpt, teacher, _ = write_checkpoint(tmp_path / "c.pt", name=name, patch_size=16, img_size=side,
                                        masked_im_modeling=True)
    out = tmp_path / f"{name}.safetensors"
    main(["--checkpoint", str(ckpt), "--format", "timm", "--output", str(out)])
    printed = capsys.readouterr().out
    assert f"timm.create_model('{timm_name}'" in printed and "max_abs_diff_timm: 0.0" in printed
    kwargs = {} if side == 224 else {"img_size": side}
    ref = _timm_model(timm_name, out, **kwargs)
    assert set(load_file(out)) == set(ref.state_dict())  # timm's load is non-strict with num_classes=0: check keys
    x = torch.randn(2, 3, side, side)
    teacher.set_attention("fused")  # timm's attention is SDPA; ours picks the explicit path for short sequences
    with torch.no_grad():
        assert torch.equal(ref(x), teacher(x))


def test_torch_save_file_loads_too(tmp_path):
    model = create_model("vit_small", patch_size=16, img_size=32, attention="fused").eval()
    path, _ = export_timm(model, tmp_path / "w.pth")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(_timm_model("vit_small_patch16_224", path, img_size=32)(x), model(x))


@pytest.mark.parametrize("kwargs,named", [
    ({"name": "vit_pico"}, "no timm model for D=128"),
    ({"pooling": "simpool"}, "pooling='simpool'"),
    ({"num_registers": 4}, "num_registers=4"),
    ({"pos_embed": "sincos"}, "pos_embed='sincos'"),
    ({"key_variant": "simplek"}, "key_variant='simplek'"),
])
def test_unexportable_options_are_named(tmp_path, kwargs, named):
    model = create_model(kwargs.pop("name", "vit_small"), patch_size=16, img_size=32, **kwargs)
    with pytest.raises(ValueError, match="cannot export to timm") as exc:
        export_timm(model, tmp_path / "x.pth")
    assert named in str(exc.value) and "vit_small_patch<p>_224" in str(exc.value)
    assert not (tmp_path / "x.pth").exists()
