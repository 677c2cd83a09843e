"""Validation k-NN against wall-clock minutes, with the minute each run crosses the raw pixels (issue 25).

Reads the online k-NN of each readout the runs logged (``knn/top1`` for the pooled vector,
``knn/top1_grid2`` for the 2x2-grid readout when ``knn.features`` lists it; every
``knn.every_epochs``) and the wall time of each event from a run's TensorBoard folder. Minutes count
from the creation of each event file (the start of the trainer); a run resumed over several sittings
has several event files, whose durations are added, so pauses between sittings do not count. The
pixel line is the same weighted k-NN (k=20, T=0.07) on the raw 784 pixels of the SAME bank / query
subsets the online monitor uses
(``pretrain.online_knn``: ``knn.max_train`` images of ``knn.train_split`` drawn with seed 0,
``knn.max_test`` of ``knn.test_split`` with seed 1).

Usage:
    python -m benchmarks.fmnist_speedrun.time_to_pixels --run "old demo recipe=runs/a" \
        --run "fmnist_long.yaml=runs/b" --run "speedrun=runs/c" --out benchmarks/fmnist_speedrun/results
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from benchmarks.provenance import command_line, machine_line, utc_now, versions_line
from pretrain.online_knn import knn_tag

REPO = Path(__file__).resolve().parents[2]


READOUTS = {kind: knn_tag(kind) for kind in ("pooled", "grid2")}  # readout -> the trainer's scalar tag


def knn_by_minute(run_dir: Path, tag: str = "knn/top1") -> list[tuple[float, int, float]]:
    """[(minutes since the trainer started, step, online k-NN top-1 %)] of one run's ``tag``, in order."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    points, offset = [], 0.0
    for events in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        start = last = None
        for ev in EventFileLoader(str(events)).Load():
            start = ev.wall_time if start is None else start
            last = ev.wall_time
            for v in ev.summary.value:
                if v.tag == tag:
                    value = v.simple_value if v.HasField("simple_value") else float(make_ndarray(v.tensor))
                    points.append(((offset + ev.wall_time - start) / 60, ev.step, value))
        offset += (last or 0.0) - (start or 0.0)
    return points


def pixel_knn(cfg: dict) -> float:
    """The online monitor's k-NN on raw pixels: same data set, splits, subset sizes and seeds."""
    from pretrain.data.datasets import FashionMNIST
    from pretrain.online_knn import subset_rows, weighted_knn_top1

    k = cfg["knn"]

    def subset(split: str, limit: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        ds = FashionMNIST(k["root"], split, as_pil=False)
        rows = subset_rows(len(ds), limit, seed)
        return (torch.from_numpy(ds.images[rows].reshape(len(rows), -1).astype(np.float32)),
                torch.from_numpy(ds.labels[rows]).long())

    bank, queries = subset(k["train_split"], k["max_train"], 0), subset(k["test_split"], k["max_test"], 1)
    return weighted_knn_top1(*bank, *queries, k["k"], k["temperature"])


def crossing(points: list[tuple[float, int, float]], level: float) -> float | None:
    """The first minute at which the online k-NN exceeds ``level`` (None if never)."""
    return next((m for m, _, v in points if v > level), None)


def plot(curves: dict[str, dict[str, list]], pixels: float, path: Path) -> None:
    """One colour per run; the 2x2-grid readout solid, the pooled vector dashed; crossings dotted."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    n = 0
    for i, (label, readouts) in enumerate(curves.items()):
        for readout, pts in readouts.items():
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", ms=3, color=f"C{i}",
                    ls="-" if readout == "grid2" else "--", label=f"{label}, {readout}")
            cross = crossing(pts, pixels)
            if cross is not None:
                ax.axvline(cross, color=f"C{i}", ls=":", lw=1)
                ax.annotate(f"{cross:.1f} min", (cross, pixels), textcoords="offset points",
                            xytext=(3, -12 - 10 * n), color=f"C{i}", fontsize=8)
                n += 1
    ax.axhline(pixels, color="k", ls="--", lw=1, label=f"raw pixels ({pixels:.2f}%)")
    ax.set(xlabel="wall-clock minutes of training (this machine)", ylabel="online k-NN top-1 (%), validation",
           title="Fashion-MNIST: time to beat the raw pixels")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, help="LABEL=RUN_DIR (a pretraining output_dir)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "fmnist_speedrun" / "results")
    a = p.parse_args(argv)
    runs = dict(r.rsplit("=", 1) for r in a.run)  # the label may hold "=" (optim.epochs=4)
    configs = {label: yaml.safe_load((Path(d) / "config.yaml").read_text()) for label, d in runs.items()}
    subsets = {json.dumps({k: c["knn"][k] for k in ("train_split", "test_split", "max_train", "max_test")})
               for c in configs.values()}
    if len(subsets) != 1:
        raise SystemExit(f"the runs watch different k-NN subsets, so one pixel line does not fit them all: {subsets}")
    pixels = pixel_knn(next(iter(configs.values())))
    curves = {label: {readout: knn_by_minute(Path(d), tag) for readout, tag in READOUTS.items()}
              for label, d in runs.items()}
    a.out.mkdir(parents=True, exist_ok=True)
    plot(curves, pixels, a.out / "time_to_pixels.png")
    record = {"command": command_line(), "date": utc_now(), "machine": machine_line(), "versions": versions_line(),
              "pixels_online_knn": pixels, "runs": {
        label: {"run_dir": runs[label], **{readout: {
            "crosses_pixels_at_min": crossing(pts, pixels),
            "points": [{"minute": round(m, 2), "step": s, "knn_top1": v} for m, s, v in pts]}
            for readout, pts in readouts.items() if pts}}
        for label, readouts in curves.items()}}
    (a.out / "time_to_pixels.json").write_text(json.dumps(record, indent=1))
    print(json.dumps({f"{label} {readout}": r[readout]["crosses_pixels_at_min"]
                      for label, r in record["runs"].items() for readout in READOUTS if readout in r}
                     | {"pixels": pixels}))


if __name__ == "__main__":
    main()
