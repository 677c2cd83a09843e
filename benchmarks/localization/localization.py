"""Benchmark: localization + background robustness on the generated benchmark, and evaluator speed.

On the offline benchmark of :mod:`downstream.localization.synth` (wsolevaluation layout with exact
boxes and masks; Backgrounds Challenge layout with class background families) this scores:

* MaxBoxAccV2 (IoU 30/50/70), MaxBoxAcc (V1), PxAP, CorLoc (60%-mass box; head mean, the best head
  as an oracle, LOST) at the evaluator's defaults (wsolevaluation's threshold step 0.001) of the
  centred-Gaussian baseline and of each model given with ``--model NAME=CHECKPOINT``
  (``NAME=random`` is a randomly initialised ViT-pico/7);
* the robustness table (per-variant top-1 of a linear probe trained on ``original``, BG-Gap,
  masked-image test) for the models listed in ``--robustness``;
* images/s of batched map extraction + metric against a one-image-at-a-time loop (DINO / LOST
  style), on the same images in one run.

Usage::

    python -m benchmarks.localization.localization --bench runs/locbench --image-size 56 \
        --model random=random --model demo=runs/demo/checkpoint.pt --robustness demo
Writes benchmarks/localization/results/localization.{md,json} and localization_<model>.png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _machine() -> str:
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, nproc={os.cpu_count()}, torch threads="
            f"{torch.get_num_threads()}, torch {torch.__version__}, Python {platform.python_version()}, "
            f"load average {load}")


def _interval() -> float:
    from downstream.localization.cli import LocalizationConfig

    return LocalizationConfig().cam_curve_interval


def _model_overrides(ckpt: str) -> list[str]:
    if ckpt == "random":
        return ["model.name=vit_pico", "model.patch_size=7"]
    return [f"checkpoint={ckpt}"]


def localization(name: str, ckpt: str, bench: Path, size: int, work: Path, folder: str = "wsol") -> dict:
    from downstream.localization.cli import LocalizationConfig, run
    from pretrain.configuration import load_config

    tag = name if folder == "wsol" else f"{name}_{folder}"
    cfg = load_config(LocalizationConfig, None, [
        "data.format=wsol", f"data.root={bench / folder}", f"data.image_size={size}", "data.num_workers=0",
        "lost=true", "progress=false", f"output={work / f'{tag}.json'}", *_model_overrides(ckpt)])
    torch.manual_seed(0)  # the random-init model is the same in every run
    res = run(cfg)
    shutil.copy(work / f"{tag}.png", RESULTS / f"localization_{tag}.png")
    return res


def robustness(name: str, ckpt: str, bench: Path, size: int, work: Path) -> dict:
    from downstream.robustness.cli import RobustnessConfig, run
    from pretrain.configuration import load_config

    cfg = load_config(RobustnessConfig, None, [
        f"data.root={bench / 'bg'}", f"data.image_size={size}", "data.num_workers=0", "epochs=100",
        "progress=false", f"output={work / f'robustness_{name}.json'}", *_model_overrides(ckpt)])
    res = run(cfg)
    shutil.copy(work / f"robustness_{name}.png", RESULTS / f"robustness_{name}.png")
    return res


def speed(ckpt: str, bench: Path, size: int, n: int = 64) -> dict:
    """images/s: batched maps + metric vs one image at a time (same images, same metric code)."""
    from downstream.backbone import ModelSpec, build_backbone
    from downstream.localization.dataset import LocDataset
    from downstream.localization.maps import attention_maps, upsample
    from downstream.localization.backbone_eval import LocSettings
    from downstream.localization.metrics import BoxAccumulator, thresholds_for
    from downstream.localization.parsers import parse
    from pretrain.data.transforms import normalize_on_device

    torch.manual_seed(0)
    spec = ModelSpec(name="vit_pico", patch_size=7) if ckpt == "random" else ModelSpec()
    model = build_backbone("" if ckpt == "random" else ckpt, spec, size)
    ds = LocDataset(parse("wsol", str(bench / "wsol")).records[:n], size)
    samples = [ds[i] for i in range(len(ds))]
    images = torch.stack([s.image for s in samples])
    thr = thresholds_for(LocSettings().interval)  # the evaluator's default step

    def score(batch_images, batch_samples, acc):
        x = normalize_on_device(batch_images)
        maps = upsample(attention_maps(model, x).mean(1), (size, size)).numpy()
        for m, s in zip(maps, batch_samples):
            acc.add(m, s.boxes, s.name)

    out = {}
    for mode in ("batched", "per_image"):
        acc = BoxAccumulator(thr)
        t0 = time.perf_counter()
        if mode == "batched":
            score(images, samples, acc)
        else:
            for i in range(len(samples)):
                score(images[i:i + 1], samples[i:i + 1], acc)
        out[f"{mode}_images_per_s"] = len(samples) / (time.perf_counter() - t0)
        out[f"{mode}_MaxBoxAccV2"] = acc.compute()["MaxBoxAccV2"]
        # maps alone (no metric): where batching matters
        t0 = time.perf_counter()
        with torch.no_grad():
            if mode == "batched":
                attention_maps(model, normalize_on_device(images))
            else:
                for i in range(len(samples)):
                    attention_maps(model, normalize_on_device(images[i:i + 1]))
        out[f"{mode}_maps_only_images_per_s"] = len(samples) / (time.perf_counter() - t0)
    out["n_images"] = len(samples)
    return out


def _md(report: dict) -> str:
    keys = ("MaxBoxAccV2", "MaxBoxAccV2_IoU30", "MaxBoxAccV2_IoU50", "MaxBoxAccV2_IoU70", "MaxBoxAcc", "PxAP",
            "CorLoc", "CorLoc_best_head_oracle", "CorLoc_LOST")
    lines = ["# Localization and background robustness on the generated benchmark", "",
             f"Date: {report['date']}  ", f"Machine: {report['machine']}  ",
             f"Benchmark: `{report['bench_command']}`; evaluated at {report['image_size']} px, threshold step "
             f"`cam_curve_interval={report['cam_curve_interval']}`.  ",
             f"Command: `{report['command']}`"]
    for folder, table in report["localization"].items():
        lines += ["", f"## Localization on `{folder}` (percent)", "",
                  "| map | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        rows = [("centre baseline", next(iter(table.values()))["centre_baseline"])]
        rows += [(f"{n} ({report['models'][n]})", r) for n, r in table.items()]
        for n, r in rows:
            lines.append(f"| {n} | " + " | ".join(f"{r[k]:.1f}" if k in r else "-" for k in keys) + " |")
    if report["robustness"]:
        variants = list(next(iter(report["robustness"].values()))["top1"])
        lines += ["", "## Background robustness: linear probe on `original/train`, top-1 per variant (percent)", "",
                  "| model | " + " | ".join(variants) + " | BG-Gap | masked 30% top-attended drop | random drop |",
                  "|---" * (len(variants) + 4) + "|"]
        for n, r in report["robustness"].items():
            m = r.get("masked", {}).get("ratio=0.3", {})
            lines.append(f"| {n} | " + " | ".join(f"{r['top1'][v]:.1f}" for v in variants) +
                         f" | {r.get('BG_Gap', float('nan')):.1f} | {m.get('top_attended_drop', float('nan')):.1f}"
                         f" | {m.get('random_drop', float('nan')):.1f} |")
    s = report["speed"]
    lines += ["", f"## Evaluator speed ({s['n_images']} images, {report['image_size']} px, model {s['model']})", "",
              "| mode | maps + MaxBoxAccV2 (images/s) | maps only (images/s) | MaxBoxAccV2 |", "|---|---|---|---|",
              (f"| batched | {s['batched_images_per_s']:.1f} | {s['batched_maps_only_images_per_s']:.1f} | "
              f"{s['batched_MaxBoxAccV2']:.2f} |"),
              (f"| one image at a time | {s['per_image_images_per_s']:.1f} | "
              f"{s['per_image_maps_only_images_per_s']:.1f} | {s['per_image_MaxBoxAccV2']:.2f} |")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="runs/locbench")
    ap.add_argument("--bench-command", default="python -m downstream.localization.synth --out runs/locbench size=112 "
                    "train_per_class=100 val_per_class=30 loc_images=300 seed=0")
    ap.add_argument("--image-size", type=int, default=56)
    ap.add_argument("--model", action="append", default=[], help="NAME=CHECKPOINT (or NAME=random)")
    ap.add_argument("--robustness", nargs="*", default=[])
    ap.add_argument("--sets", nargs="*", default=["wsol", "wsol_onblack"], help="localization folders of the bench")
    ap.add_argument("--speed-model", default="random")
    ap.add_argument("--work", default="runs/locbench_eval")
    ap.add_argument("--out", default=str(RESULTS / "localization"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    bench, work = Path(args.bench), Path(args.work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    models = dict(m.split("=", 1) for m in args.model)
    report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "image_size": args.image_size, "bench_command": args.bench_command, "models": models,
              "cam_curve_interval": _interval(),
              "command": "python -m benchmarks.localization.localization " + " ".join(
                  [f"--image-size {args.image_size}"] + [f"--model {m}" for m in args.model] +
                  ([f"--robustness {' '.join(args.robustness)}"] if args.robustness else [])),
              "localization": {}, "robustness": {}}
    for name, ckpt in list(models.items()):
        if ckpt != "random" and not Path(ckpt).is_file():
            print(f"skipping {name}: {ckpt} does not exist (yet)")
            models.pop(name)
            continue
        for folder in args.sets:
            report["localization"].setdefault(folder, {})[name] = localization(name, ckpt, bench, args.image_size,
                                                                               work, folder)
    for name in [n for n in args.robustness if n in models]:
        report["robustness"][name] = robustness(name, models[name], bench, args.image_size, work)
    report["speed"] = {"model": args.speed_model, **speed(models.get(args.speed_model, "random"), bench,
                                                           args.image_size)}
    report["machine"] = _machine()
    Path(args.out + ".json").write_text(json.dumps(report, indent=2) + "\n")
    Path(args.out + ".md").write_text(_md(report))
    print(_md(report))


if __name__ == "__main__":
    main()
