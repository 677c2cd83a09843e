"""Localization and background robustness of every trained model of the study (issue 25, item 3).

The AttMask paper (Kakogeorgiou et al., ECCV 2022, sections 4.3-4.4) claims better attention maps and
more background robustness, not only accuracy; so each model is also scored on the composited
benchmark of :mod:`downstream.localization.synth` (Fashion-MNIST objects with exact boxes and masks):

* MaxBoxAccV2 (and PxAP) of the teacher's attention map (``source=auto``: the SimPool attention of a
  SimPool model, the [CLS] attention otherwise; head mean; last block) on the objects-on-photos set
  ``wsol`` and the objects-on-black set ``wsol_onblack``;
* BG-Gap (mixed_same - mixed_rand top-1) and the per-variant top-1 of a linear probe on the pooled
  feature trained on ``original/train`` (:mod:`downstream.robustness`).

Both through the evaluators' own ``run`` (the same code as the command lines), at ``image_size`` px.
MaxBoxAccV2 here uses a threshold step of 0.01 (``cam_curve_interval``; wsolevaluation's and the
evaluator's default is 0.001): ten times fewer contour passes, 4 s instead of 40 s per model and set on
this CPU, the same for every model of the comparison (on this benchmark the step moves MaxBoxAccV2 by
tenths of a point).
Rows go to ``attention.jsonl`` keyed like the results (variant, seed, budget); random-init rows use a
checkpoint file of the untrained architecture (:func:`untrained_checkpoint`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from benchmarks.fmnist_study.evaluation import untrained_model
from benchmarks.fmnist_study.runs import append_jsonl, budget_key, init_baseline_of, recorded_keys, run_dir
from pretrain.models.weights import read_checkpoint

log = logging.getLogger(__name__)

BENCH_SETTINGS = ("size=112", "train_per_class=100", "val_per_class=30", "loc_images=300", "seed=0")
LOC_SETS = ("wsol", "wsol_onblack")
LOC_KEYS = ("MaxBoxAccV2", "MaxBoxAccV2_IoU50", "PxAP")
CAM_CURVE_INTERVAL = 0.01


def ensure_bench(bench: Path) -> Path:
    """Builds the composited benchmark (``python -m downstream.localization.synth``) unless it is there."""
    if not (bench / "wsol" / "metadata").is_dir() or not (bench / "bg").is_dir():
        from downstream.localization.synth import SynthConfig, build
        from pretrain.configuration import load_config

        build(load_config(SynthConfig, None, [f"out={bench}", *BENCH_SETTINGS, "progress=false"]))
    return bench


def untrained_checkpoint(trained: Path, seed: int, dest: Path) -> Path:
    """A checkpoint file holding ``trained``'s architecture at its random initialisation (seed ``seed``),
    for the evaluators that read a checkpoint path; written once."""
    if not dest.is_file():
        ckpt = read_checkpoint(trained)
        model = untrained_model(trained, seed)
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": ckpt["format"], "model": ckpt["model"], "teacher": model.state_dict()}, dest)
    return dest


def score(checkpoint: Path, bench: Path, size: int, work: Path) -> dict:
    """{"localization": {set: {MaxBoxAccV2, MaxBoxAccV2_IoU50, PxAP}}, "robustness": {"BG_Gap", "top1"}}."""
    from downstream.localization.cli import LocalizationConfig
    from downstream.localization.cli import run as localize
    from downstream.robustness.cli import RobustnessConfig
    from downstream.robustness.cli import run as robustness
    from pretrain.configuration import load_config

    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"localization": {}, "image_size": size, "cam_curve_interval": CAM_CURVE_INTERVAL}
    for folder in LOC_SETS:
        res = localize(load_config(LocalizationConfig, None, [
            "data.format=wsol", f"data.root={bench / folder}", f"data.image_size={size}", "data.num_workers=0",
            f"cam_curve_interval={CAM_CURVE_INTERVAL}", "progress=false", f"output={work / f'{folder}.json'}", f"checkpoint={checkpoint}"]))
        out["localization"][folder] = {k: res[k] for k in LOC_KEYS}
    res = robustness(load_config(RobustnessConfig, None, [
        f"data.root={bench / 'bg'}", f"data.image_size={size}", "data.num_workers=0", "epochs=100",
        "progress=false", "masked_ratios=[]", f"output={work / 'robustness.json'}", f"checkpoint={checkpoint}"]))
    out["robustness"] = {"BG_Gap": res["BG_Gap"], "top1": res["top1"]}
    return out


def score_all(a: argparse.Namespace, plan: list[tuple[str, int]], jsonl: Path) -> None:
    """Scores every finished run of ``plan`` and the random init of each seed, skipping recorded rows."""
    bench = ensure_bench(a.bench)
    for variant, seed in plan:
        trained = run_dir(a, variant, seed) / "checkpoint.pt"
        if not trained.is_file():
            continue
        jobs = [(variant, trained)]
        init = init_baseline_of(variant)
        jobs.append((init, untrained_checkpoint(trained, seed, a.runs / "untrained" / f"{init}_{budget_key(a)}_s{seed}.pt")))
        for name, ckpt in jobs:
            if (name, seed, budget_key(a)) in recorded_keys(jsonl):
                continue
            log.info("localization + robustness: %s seed %d", name, seed)
            row = {"variant": name, "seed": seed, "budget": budget_key(a),
                   **score(ckpt, bench, a.loc_size, a.runs / "attention_eval" / f"{name}_{budget_key(a)}_s{seed}")}
            append_jsonl(jsonl, row)
