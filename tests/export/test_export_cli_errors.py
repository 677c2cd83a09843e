"""Bad input to `python -m pretrain.export`: one line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from pretrain.export.cli import main
from tests.conftest import REPO
from tests.tiny_checkpoint import write_checkpoint


def _fails(argv, capsys, lines: int = 1) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == lines and "Traceback" not in err and err.startswith("error: ")
    return err


def test_missing_checkpoint(tmp_path, capsys):
    err = _fails(["--checkpoint", str(tmp_path / "nope.pt"), "--format", "onnx", "--output", str(tmp_path / "o")],
                 capsys)
    assert err == f"error: checkpoint file not found: {tmp_path / 'nope.pt'}"


def test_state_dict_without_architecture_asks_for_model_keys(tmp_path, capsys):
    torch.save({"cls_token": torch.zeros(1, 1, 8)}, tmp_path / "sd.pt")
    err = _fails(["--checkpoint", str(tmp_path / "sd.pt"), "--output", str(tmp_path / "o")], capsys)
    assert "records no architecture" in err and "model.name=vit_small" in err


def test_named_model_that_the_weights_do_not_fill(tmp_path, capsys):
    ckpt, _, _ = write_checkpoint(tmp_path / "c.pt")  # a vit_pico
    torch.save({"state_dict": torch.load(ckpt)["teacher"]}, tmp_path / "plain.pth")
    err = _fails(["--checkpoint", str(tmp_path / "plain.pth"), "--output", str(tmp_path / "o"),
                  "model.name=vit_small"], capsys)
    assert "does not fill vit_small" in err


def test_unexportable_option_named(tmp_path, capsys):
    ckpt, _, _ = write_checkpoint(tmp_path / "c.pt", key_variant="simplek")
    err = _fails(["--checkpoint", str(ckpt), "--format", "onnx", "--output", str(tmp_path / "m.onnx")], capsys)
    assert "key_variant='simplek'" in err


def test_unknown_format_is_a_config_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pretrain.export", "--checkpoint", "x", "--format", "tflite",
                           "--output", "o"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "tflite" in proc.stderr and "Traceback" not in proc.stderr
