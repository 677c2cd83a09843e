"""`--format onnx`: one graph for every batch and image size, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from pretrain.export.cli import main  # noqa: E402
from pretrain.export.onnx_export import OnnxBackbone, check_onnx, export_onnx  # noqa: E402
from pretrain.models import create_model  # noqa: E402
from tests.tiny_checkpoint import write_checkpoint  # noqa: E402

TOLERANCE = 1e-4  # fp32 goal of issue 23


@pytest.mark.parametrize("kwargs", [{}, {"pooling": "simpool", "simpool_gamma": 1.25},
                                    {"pos_embed": "sincos", "num_registers": 2, "pos_embed_interp": "exact"}])
def test_two_sizes_and_non_square_match_pytorch(tmp_path, kwargs):
    model = create_model("vit_pico", patch_size=8, img_size=32, **kwargs).eval()
    report = export_onnx(model, tmp_path / "m.onnx", attention=True, check_sizes=(32, 48))
    assert report.opset == 17 and report.outputs == ("pooled", "attention")
    assert max(report.max_abs_diff.values()) <= TOLERANCE, report.max_abs_diff
    assert check_onnx(tmp_path / "m.onnx", model, (24, 64), attention=True, batch=3) <= TOLERANCE


def test_graph_inputs_are_dynamic_and_opset_recorded(tmp_path):
    model = create_model("vit_pico", patch_size=8, img_size=32).eval()
    export_onnx(model, tmp_path / "m.onnx", opset=18, check_sizes=(40,))
    graph = onnx.load(str(tmp_path / "m.onnx"))
    assert [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")] == [18]
    dims = [d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == "batch" and dims[2] == "height" and dims[3] == "width"
    out = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"image": torch.randn(5, 3, 16, 80).numpy()})
    assert out[0].shape == (5, 128)


def test_dino_resampling_is_dinos_not_exact(tmp_path):
    """At another grid the graph follows the model's mode: the two modes differ by far more than the tolerance."""
    model = create_model("vit_pico", patch_size=8, img_size=32).eval()  # pos_embed_interp="dino"
    with torch.no_grad():
        model.pos_embed.normal_()  # a table of unit scale (init is 0.02) so that where it is sampled shows
    export_onnx(model, tmp_path / "dino.onnx", check_sizes=(32,))
    x = torch.randn(2, 3, 48, 48)
    got = torch.from_numpy(ort.InferenceSession(str(tmp_path / "dino.onnx")).run(None, {"image": x.numpy()})[0])
    with torch.no_grad():
        dino = model(x)
        model.pos_embed_interp = "exact"
        exact = model(x)
    to_dino, to_exact = (got - dino).abs().max(), (got - exact).abs().max()
    assert to_dino <= TOLERANCE and to_exact > 10 * TOLERANCE and to_exact > 100 * to_dino


def test_manifold_key_is_refused_by_name():
    model = create_model("vit_pico", patch_size=8, img_size=32, key_variant="simplek")
    with pytest.raises(ValueError, match="key_variant='simplek'"):
        OnnxBackbone(model)


def test_cli_prints_opset_and_both_differences(tmp_path, capsys):
    ckpt, _, _ = write_checkpoint(tmp_path / "c.pt")
    main(["--checkpoint", str(ckpt), "--format", "onnx", "--output", str(tmp_path / "m.onnx"), "--attention"])
    out = capsys.readouterr().out
    assert "opset: 17" in out and "outputs: ['pooled', 'attention']" in out
    line = next(s for s in out.splitlines() if s.startswith("max_abs_diff_onnxruntime"))
    diffs = eval(line.split(": ", 1)[1])  # {'32px': d, '48px': d}
    assert set(diffs) == {"32px", "48px"} and max(diffs.values()) <= TOLERANCE
