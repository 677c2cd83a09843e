"""`python -m pretrain.export --format safetensors`: the folder rebuilds the exact backbone, with its card."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pretrain.config import ModelConfig
from pretrain.export.cli import main
from pretrain.models import from_pretrained
from tests.tiny_checkpoint import write_checkpoint


def _images(side: int = 32) -> torch.Tensor:
    return torch.randn(3, 3, side, side, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("kwargs", [{}, {"pooling": "simpool", "simpool_gamma": 1.25, "num_registers": 2},
                                    {"pos_embed": "sincos", "pos_embed_interp": "exact"}])
def test_folder_rebuilds_the_teacher_exactly(tmp_path, capsys, kwargs):
    ckpt, teacher, _ = write_checkpoint(tmp_path / "run" / "checkpoint.pt", **kwargs)
    main(["--checkpoint", str(ckpt), "--format", "safetensors", "--output", str(tmp_path / "out")])
    assert "max_abs_diff_rebuilt: 0.0" in capsys.readouterr().out
    model = from_pretrained(tmp_path / "out")
    assert not model.training
    with torch.no_grad():
        for side in (32, 48):  # the training size and a resampled position table
            assert torch.equal(model(_images(side)), teacher(_images(side)))
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert set(config["model_config"]) == {f.name for f in dataclasses.fields(ModelConfig)}
    assert config["model_config"]["embed_dim"] == 128 and config["model_config"]["depth"] == 4
    assert config["model_config"]["pooling"] == kwargs.get("pooling", "cls")


def test_which_student_exports_the_student(tmp_path):
    ckpt, teacher, student = write_checkpoint(tmp_path / "c.pt")
    main(["--checkpoint", str(ckpt), "--format", "safetensors", "--output", str(tmp_path / "s"), "--which", "student"])
    with torch.no_grad():
        got = from_pretrained(tmp_path / "s")(_images())
        assert torch.equal(got, student(_images()))
        assert not torch.equal(got, teacher(_images()))


def test_model_card_has_recipe_and_results_of_the_run_folder(tmp_path):
    run = tmp_path / "run"
    ckpt, _, _ = write_checkpoint(run / "checkpoints" / "step_00000007.pt", step=7)
    (run / "knn.json").write_text(json.dumps({"top1": 71.25, "top5": 97.5, "k": 20, "dataset": "fmnist"}))
    (run / "checkpoints" / "linear.json").write_text(json.dumps({"test": {"top1": 80.5}}))
    main(["--checkpoint", str(ckpt), "--format", "safetensors", "--output", str(tmp_path / "out")])
    card = (tmp_path / "out" / "README.md").read_text()
    for line in ("| method | ibot |", "| masking | attmask_high |", "| data set | fashion_mnist |",
                 "| steps trained | 7 |", "| top1 | 71.25 |", "| test.top1 | 80.5 |", "`knn.json`:", "| patch_size | 8 |"):
        assert line in card, line
    assert "dataset | fmnist" not in card  # strings are not results


def test_dino_style_checkpoint_needs_model_name_then_exports(tmp_path, capsys):
    torch.manual_seed(3)
    ckpt, teacher, _ = write_checkpoint(tmp_path / "ours.pt")
    foreign = {"teacher": {f"module.backbone.{k}": v for k, v in teacher.state_dict().items()},
               "epoch": 100}  # DINO layout: no architecture recorded
    foreign["teacher"]["module.head.mlp.0.weight"] = torch.zeros(4, 128)
    torch.save(foreign, tmp_path / "dino.pth")
    argv = ["--checkpoint", str(tmp_path / "dino.pth"), "--format", "safetensors", "--output", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "model.name" in err and "Traceback" not in err
    main(argv + ["model.name=vit_pico", "model.patch_size=8"])
    with torch.no_grad():
        model = from_pretrained(tmp_path / "o")  # built at 224: same table resampled to 32 px as the teacher's
        assert torch.equal(model(_images(224)[:1]), teacher(_images(224)[:1]))
