"""End to end: a tiny fine-tuning run from a checkpoint, its JSON, bit-identical resume, parse-time errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from downstream.finetune.cli import FinetuneConfig, run
from pretrain.configuration import load_config
from pretrain.preemption import REQUESTS, Preempted, request_checkpoint
from tests.tiny_checkpoint import write_checkpoint

REPO = Path(__file__).resolve().parents[3]


def _folder(root: Path, per_class: int = 8) -> Path:
    """Two classes of 32 px images: dark vs bright squares with noise."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c, level in enumerate((40, 200)):
            (root / split / f"c{c}").mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = np.clip(level + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / f"c{c}" / f"{i}.png")
    return root


def _cfg(tmp: Path, out: str, *extra: str) -> FinetuneConfig:
    ckpt, _, _ = write_checkpoint(tmp / "ckpt.pt")
    return load_config(FinetuneConfig, None, [
        f"checkpoint={ckpt}", f"data.root={_folder(tmp / 'data')}", "data.test_split=val", "data.batch_size=4",
        "data.num_workers=0", "optim.epochs=2", "optim.warmup_epochs=1", "run.device=cpu",
        f"run.output_dir={tmp / out}", "run.log_every_steps=1", *extra])


def test_tiny_run_writes_results(tmp_path: Path):
    results = run(_cfg(tmp_path, "a", f"output={tmp_path / 'ft.json'}"))
    saved = json.loads((tmp_path / "ft.json").read_text())
    assert {"checkpoint", "init", "pool", "steps", "epochs", "val_history", "val", "test", "peak_lr"} <= set(saved)
    assert saved["steps"] == 8 and saved["epochs"] == 2.0 and len(saved["val_history"]) == 2
    assert saved["test"]["images"] == 16 and 0 <= saved["test"]["top1"] <= 100 and saved["test"]["top5"] == 100.0
    assert saved["peak_lr"] == pytest.approx(1e-3 * 4 / 256)
    assert results["init"] == "pretrained"
    assert list((tmp_path / "a" / "tensorboard").glob("events.*"))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "finetuned.pt", weights_only=True)


def test_resume_after_interrupt_is_bit_identical(tmp_path: Path):
    run(_cfg(tmp_path, "whole"))
    request_checkpoint(stop=True)  # as SIGTERM would: checkpoint after the next step, then stop
    try:
        with pytest.raises(Preempted):
            run(_cfg(tmp_path, "cut"))
    finally:
        REQUESTS.clear()
    assert [p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()] == ["step_00000001.pt"]
    resumed = run(_cfg(tmp_path, "cut"))
    assert resumed["steps"] == 8
    whole, cut = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert whole.keys() == cut.keys()
    assert all(torch.equal(whole[k], cut[k]) for k in whole)


def test_random_init_is_the_same_architecture(tmp_path: Path):
    results = run(_cfg(tmp_path, "r", "model.init=random", "run.max_steps=1"))
    assert results["init"] == "random" and results["steps"] == 1


def test_bad_choice_fails_at_parse_time(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "downstream.finetune", "--checkpoint", "missing.pt",
                           "data.root=/nonexistent", "head.pool=clss"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "config error: head.pool='clss' is not a valid value: did you mean 'cls'?" in proc.stderr
    assert "Traceback" not in proc.stderr  # nothing was read: the checkpoint and data do not exist
