"""Fashion-MNIST study (issue 15): every masking strategy and SimPool vs [CLS], several seeds, same budget.

Each run pretrains the recipe (default ``configs/pretrain/demo_fmnist.yaml``) with one variant on a
fixed subset of ``train_fit`` (the 50k training images outside the validation split, see
`pretrain.data.fashion_mnist.holdout_split`), then evaluates the teacher's pooled features on the
validation split ``train_holdout``: weighted k-NN (k=20, T=0.07, `downstream.knn.knn_classify`) with a
bank from ``train_fit``, and a linear probe (`downstream.linear.train_heads`, learning rate chosen on
a tenth of the bank). ``--final-test`` instead evaluates one finished variant once on the test split
(bank: the full 60k train split).

Resumable across sittings: one folder per run under ``--runs``; a run whose ``result.json`` exists
(or whose result is already in the JSONL) is skipped; an interrupted run resumes from its
checkpoints (the trainer resumes a given ``run.output_dir``). Results are appended to
``results.jsonl``; the table ``results.md`` and the plots are rebuilt from the JSONL each time.
Runs go seed-major (every variant with seed 0, then seed 1, ...) so a partial study stays balanced.

A budget (``budget_key``: recipe, training images, epochs, ``--set`` overrides) names one comparison;
keep the evaluation flags (``--bank-size``, ``--val-size``, ``--knn-*``) the same within a budget
(each record states its ``bank`` / ``queries`` sizes).

Usage:
    OMP_NUM_THREADS=1 python benchmarks/fmnist_study.py --train-size 10000 --epochs 2
    python benchmarks/fmnist_study.py --train-size 10000 --epochs 2 --table-only
    python benchmarks/fmnist_study.py --train-size 10000 --epochs 2 --final-test --variants attmask_high
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable from a checkout without installing the package

from downstream.knn.weighted_knn import knn_classify  # noqa: E402
from downstream.linear.probe import DEFAULT_LRS, head_accuracy, select_best, train_heads  # noqa: E402
from downstream.linear.data import cached_batches, stratified_split  # noqa: E402
from pretrain.config import PretrainConfig  # noqa: E402
from pretrain.configuration import load_config  # noqa: E402
from pretrain.data.datasets import FashionMNIST  # noqa: E402
from pretrain.data.fashion_mnist import ensure_fashion_mnist, write_train_subset  # noqa: E402
from pretrain.data.loader import build_eval_loader  # noqa: E402
from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform  # noqa: E402
from pretrain.features import extract  # noqa: E402
from pretrain.masking import build_masker  # noqa: E402
from pretrain.models import create_model, create_model_from_checkpoint  # noqa: E402
from pretrain.models.weights import read_checkpoint  # noqa: E402
from pretrain.tensorboard import attention_picture  # noqa: E402

log = logging.getLogger("fmnist_study")
# masked variants train iBOT's patch loss (a no-op for the iBOT recipes; the DINO speedrun recipe needs it);
# "none" keeps the recipe's method
VARIANTS: dict[str, list[str]] = {
    "none": ["mask.strategy=none"], "random": ["mask.strategy=random", "loss.method=ibot"],
    "block": ["mask.strategy=block", "loss.method=ibot"],
    "attmask_high": ["mask.strategy=attmask_high", "loss.method=ibot"],
    "attmask_hint": ["mask.strategy=attmask_hint", "loss.method=ibot"],
    "attmask_low": ["mask.strategy=attmask_low", "loss.method=ibot"],
    "simpool_attmask_high": ["mask.strategy=attmask_high", "loss.method=ibot", "model.pooling=simpool"],
}
# untrained baselines: the architecture of this variant's run, evaluated at its random initialisation
INIT_BASELINES: dict[str, str] = {"random_init": "attmask_high", "random_init_simpool": "simpool_attmask_high",
                                  "raw_pixels": ""}  # raw_pixels: no model, one row
SUBSET_SEED = 0  # the training subset is the same for every run: only the run seed varies


def budget_key(a: argparse.Namespace) -> str:
    """Names what every run of one comparison shares: recipe, training images, epochs, extra overrides."""
    key = f"{Path(a.recipe).stem}_n{a.train_size}_e{a.epochs}"
    if a.set:  # same overrides, same name; other overrides never mix into this comparison
        key += "_" + hashlib.sha1(" ".join(sorted(a.set)).encode()).hexdigest()[:6]
    return key


def train_subset(root: Path, size: int, dest: Path) -> Path:
    """A data folder whose "train" split is ``size`` images of train_fit (fixed seed), class-mixed."""
    if (dest / "train-labels-idx1-ubyte").is_file():
        return dest
    fit = FashionMNIST(root, "train_fit", as_pil=False)
    rows = np.sort(np.random.default_rng(SUBSET_SEED).choice(len(fit), size=min(size, len(fit)), replace=False))
    return write_train_subset(fit.images[rows], fit.labels[rows], dest, root)


def features(model, root: Path, split: str, limit: int, size: int,
             kinds: tuple[str, ...] = ("pooled",)) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Teacher features {kind: (N, D_kind)} and labels (N,) of ``limit`` evenly spaced images of a split (0: all).

    Kinds needing [CLS] are left out for a model without one (SimPool)."""
    ds = FashionMNIST(root, split)
    if 0 < limit < len(ds):
        ds = torch.utils.data.Subset(ds, np.linspace(0, len(ds) - 1, limit).round().astype(int).tolist())
    loader = build_eval_loader(ds, EvalTransform(size, resize=size), 512, 0)
    if getattr(model, "num_cls", 1) == 0:
        kinds = tuple(k for k in kinds if not k.startswith("cls"))
    f, y = extract(model.eval(), loader, kinds, "cpu", "none", IMAGENET_MEAN, IMAGENET_STD, progress=False)
    return {k: torch.from_numpy(v) for k, v in f.items()}, torch.from_numpy(y)


def linear_probe(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 epochs: int, seed: int = 0) -> float:
    """Top-1 (%) on ``test`` of the linear head whose learning rate won on a tenth of ``train``."""
    x, y = train
    keep, held = stratified_split(y.numpy(), 0.1, seed)
    fit = {"pooled": x[keep]}
    heads, _ = train_heads(lambda bs, g: cached_batches(fit, y[keep], bs, g), {"pooled": x.shape[1]}, 10,
                           DEFAULT_LRS, epochs, 256, -(-len(keep) // 256), seed=seed)
    _, h = select_best(head_accuracy(heads, {"pooled": x[held]}, y[held]), DEFAULT_LRS)
    return float(head_accuracy(heads, {"pooled": test[0]}, test[1])["pooled"][h, 0])


def pixel_baseline(root: Path, a: argparse.Namespace) -> dict:
    """k-NN and linear probe on the raw 784 pixels, same bank / validation images as `evaluate`."""
    sets = []
    for split, limit in (("train_fit", a.bank_size), ("train_holdout", a.val_size)):
        ds = FashionMNIST(root, split, as_pil=False)
        rows = np.linspace(0, len(ds) - 1, limit).round().astype(int) if 0 < limit < len(ds) else np.arange(len(ds))
        sets.append((torch.from_numpy(ds.images[rows].reshape(len(rows), -1).astype(np.float32) / 255),
                     torch.from_numpy(ds.labels[rows])))
    (bx, by), (qx, qy) = sets
    knn = knn_classify(bx, by, qx, qy, ks=(20,), progress=False)["k=20"]["top1"]
    return {"knn_top1": knn, "linear_top1": linear_probe((bx, by), (qx, qy), a.linear_epochs),
            "knn_by_kind": {"pixels": knn}, "bank": len(by), "queries": len(qy), "split": "train_holdout"}


def evaluate(checkpoint: Path, root: Path, a: argparse.Namespace, test: bool = False,
             init_seed: int | None = None) -> dict:
    """k-NN (k=20) and linear-probe top-1 of a checkpoint's teacher on the validation (or test) split.

    ``knn_top1`` / ``linear_top1`` use the pooled feature; ``knn_by_kind`` adds the k-NN of every
    kind in ``a.kinds`` (e.g. [CLS] + patch mean) from the same forward pass. With ``init_seed`` the
    checkpoint's architecture is evaluated untrained (``torch.manual_seed(init_seed)``): the random-init baseline.
    """
    if init_seed is None:
        model, _ = create_model_from_checkpoint(checkpoint, which="teacher")
    else:
        arch = read_checkpoint(checkpoint)["model"]
        torch.manual_seed(init_seed)
        model = create_model(arch["name"], **dict(arch.get("kwargs") or {}))
    kinds = tuple(dict.fromkeys(("pooled", *a.kinds)))
    bank = features(model, root, "train" if test else "train_fit", 0 if test else a.bank_size, a.image_size, kinds)
    queries = features(model, root, "test" if test else "train_holdout", 0 if test else a.val_size,
                       a.image_size, kinds)
    by_kind = {k: knn_classify(bank[0][k], bank[1], queries[0][k], queries[1], ks=(20,), progress=False)["k=20"]["top1"]
               for k in bank[0]}
    linear = linear_probe((bank[0]["pooled"], bank[1]), (queries[0]["pooled"], queries[1]), a.linear_epochs)
    return {"knn_top1": by_kind["pooled"], "linear_top1": linear, "knn_by_kind": by_kind,
            "bank": len(bank[1]), "queries": len(queries[1]), "split": "test" if test else "train_holdout"}


def knn_curve(run_dir: Path) -> list[float]:
    """Online k-NN top-1 per epoch (on the validation split) from the run's train.log (last run wins)."""
    curve: dict[int, float] = {}
    log_file = run_dir / "train.log"
    for m in re.finditer(r"epoch (\d+): online k-NN top-1 ([\d.]+)%", log_file.read_text() if log_file.is_file() else ""):
        curve[int(m.group(1))] = float(m.group(2))
    return [curve[e] for e in sorted(curve)]


def init_baselines(a: argparse.Namespace, root: Path, jsonl: Path) -> None:
    """Records the raw-pixel baseline and the random-init baseline of each architecture and seed whose
    trained run exists (no training)."""
    recorded = {(r["variant"], r["seed"], r["budget"]) for r in read_jsonl(jsonl)}
    common = {"budget": budget_key(a), "train_size": 0, "epochs": 0, "recipe": str(Path(a.recipe).name),
              "overrides": a.set, "train_s": 0.0, "knn_curve": []}
    if ("raw_pixels", 0, budget_key(a)) not in recorded:
        with jsonl.open("a") as f:
            f.write(json.dumps({"variant": "raw_pixels", "seed": 0, **common, **pixel_baseline(root, a)}) + "\n")
    for name, variant in INIT_BASELINES.items():
        for seed in a.seeds if variant else []:
            ckpt = a.runs / f"{variant}_{budget_key(a)}_s{seed}" / "checkpoint.pt"
            if (name, seed, budget_key(a)) in recorded or not ckpt.is_file():
                continue
            result = {"variant": name, "seed": seed, **common, **evaluate(ckpt, root, a, init_seed=seed)}
            with jsonl.open("a") as f:
                f.write(json.dumps(result) + "\n")


def train_one(variant: str, seed: int, a: argparse.Namespace, root: Path, data: Path, run_dir: Path) -> dict:
    overrides = [f"data.root={data}", f"knn.root={root}", "knn.train_split=train_fit", "knn.test_split=train_holdout",
                 f"knn.max_train={a.knn_bank}", f"knn.max_test={a.knn_queries}", "knn.every_epochs=1",
                 f"optim.epochs={a.epochs}", f"run.seed={seed}", f"run.output_dir={run_dir}", "run.progress=false",
                 f"data.num_workers={a.workers}", *VARIANTS[variant], *a.set]
    load_config(PretrainConfig, str(a.recipe), overrides)  # a bad override fails here, not in the child
    t0 = time.perf_counter()
    # a child process per run: its own train.log (logging is configured once per process) and memory
    subprocess.run([sys.executable, "-m", "pretrain.train", "--config", str(a.recipe), *overrides],
                   cwd=REPO, check=True)
    t_train = time.perf_counter() - t0
    result = {"variant": variant, "seed": seed, "budget": budget_key(a), "train_size": a.train_size,
              "epochs": a.epochs, "recipe": str(Path(a.recipe).name), "overrides": a.set,
              "train_s": round(t_train, 1), "knn_curve": knn_curve(run_dir),
              **evaluate(run_dir / "checkpoint.pt", root, a)}
    result["total_s"] = round(time.perf_counter() - t0, 1)
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def record(jsonl: Path, run_dir: Path) -> bool:
    """Appends the run's result.json to the JSONL unless it is there already; False if the run is unfinished."""
    result_file = run_dir / "result.json"
    if not result_file.is_file():
        return False
    result = json.loads(result_file.read_text())
    key = (result["variant"], result["seed"], result["budget"])
    if key not in {(r["variant"], r["seed"], r["budget"]) for r in read_jsonl(jsonl)}:
        with jsonl.open("a") as f:
            f.write(json.dumps(result) + "\n")
    return True


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def write_tables(out: Path, rows: list[dict], current: str, plan: Sequence[tuple[str, int]] = ()) -> str:
    """results.md: one section per budget in the JSONL (the current one first); returns the current one."""
    seen: set = set()  # two processes finishing together may both have recorded a baseline: count it once
    rows = [r for r in rows if (k := (r["variant"], r["seed"], r["budget"])) not in seen and not seen.add(k)]
    budgets = [current] + sorted({r["budget"] for r in rows} - {current})
    sections = [write_table(rows, b, plan if b == current else ()) for b in budgets]
    (out / "results.md").write_text("\n".join(sections))
    return sections[0]


def write_table(rows: list[dict], budget: str, plan: Sequence[tuple[str, int]] = ()) -> str:
    """Mean +- std per variant, and each pairwise k-NN / linear difference against the seed std (markdown).

    ``plan``: the (variant, seed) runs this invocation should finish (empty: not stated); another
    process may be finishing other variants of the same budget, so both counts are given."""
    rows = [r for r in rows if r["budget"] == budget]
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["variant"], []).append(r)
    order = [v for v in (*VARIANTS, *INIT_BASELINES) if v in by]
    n_trained = sum(r["variant"] in VARIANTS for r in rows)
    n_planned_done = len(set(plan) & {(r["variant"], r["seed"]) for r in rows})
    lines = [f"# Fashion-MNIST study, budget {budget} (validation split train_holdout)", "",
             (f"{n_planned_done} of {len(set(plan))} planned training runs finished"
              + (" (PARTIAL)" if n_planned_done < len(set(plan)) else "") + f", {n_trained} recorded in all"
              if plan else f"{n_trained} training runs recorded")
             + "; random_init* rows: the same architectures untrained (same seeds, same evaluation); "
             "raw_pixels: the 784 pixel values (scaled to [0, 1]), same bank and validation images.", "",
             "| variant | seeds | k-NN top-1 (k=20) | linear top-1 | k-NN other features (mean) "
             "| online k-NN per epoch (mean) | train min/run |",
             "|---|---|---|---|---|---|---|"]
    stats = {}
    for v in order:
        knn, lin = mean_std([r["knn_top1"] for r in by[v]]), mean_std([r["linear_top1"] for r in by[v]])
        stats[v] = {"knn": knn, "linear": lin}
        curves = [r["knn_curve"] for r in by[v] if r["knn_curve"]]
        curve = " / ".join(f"{statistics.fmean(c[i] for c in curves if len(c) > i):.1f}"
                           for i in range(max(map(len, curves), default=0)))
        kinds = sorted({k for r in by[v] for k in r.get("knn_by_kind", {}) if k != "pooled"})
        other = ", ".join(f"{k} {statistics.fmean(r['knn_by_kind'][k] for r in by[v] if k in r.get('knn_by_kind', {})):.2f}"
                          for k in kinds)
        lines.append(f"| {v} | {len(by[v])} | {knn[0]:.2f} +- {knn[1]:.2f} | {lin[0]:.2f} +- {lin[1]:.2f} | {other} | {curve} | "
                     f"{statistics.fmean(r['train_s'] for r in by[v]) / 60:.1f} |")
    for metric in ("knn", "linear"):
        lines += ["", f"## {metric}: difference of means (row - column) against the larger seed std", "",
                  "`*` marks a difference larger than the larger of the two stds (needs >= 2 seeds each); "
                  "anything else is within the seed noise and is not a result.", "",
                  "| | " + " | ".join(order) + " |", "|---" * (len(order) + 1) + "|"]
        for v in order:
            cells = []
            for w in order:
                d = stats[v][metric][0] - stats[w][metric][0]
                stds = (stats[v][metric][1], stats[w][metric][1])
                beyond = all(np.isfinite(stds)) and abs(d) > max(stds)
                cells.append("" if v == w else f"{d:+.2f}{'*' if beyond else ''}")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(out: Path, rows: list[dict], budget: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, v in enumerate(VARIANTS):
        curves = [r["knn_curve"] for r in rows if r["budget"] == budget and r["variant"] == v and r["knn_curve"]]
        for j, c in enumerate(curves):
            ax.plot(range(1, len(c) + 1), c, color=f"C{i}", marker="o", alpha=0.8, label=v if j == 0 else None)
    ax.set(xlabel="epoch", ylabel="online k-NN top-1 (%), validation subset", title=f"Fashion-MNIST study {budget}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"knn_vs_epoch_{budget}.png", dpi=100)
    plt.close(fig)


def attention_maps(out: Path, runs: Path, root: Path, a: argparse.Namespace, n_images: int = 8) -> None:
    """Per variant (seed 0): validation images, the teacher's [CLS]/SimPool attention, the variant's mask."""
    from torchvision.utils import save_image

    ds = torch.utils.data.Subset(FashionMNIST(root, "train_holdout"), list(range(n_images)))
    images = next(iter(build_eval_loader(ds, EvalTransform(a.image_size, resize=a.image_size), n_images, 0)))[0]
    x = (images.float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    for v, overrides in VARIANTS.items():
        ckpt = runs / f"{v}_{budget_key(a)}_s0" / "checkpoint.pt"
        if not ckpt.is_file():
            continue
        model, _ = create_model_from_checkpoint(ckpt, which="teacher")
        with torch.no_grad():
            scores = model.eval().forward_features(x, return_attention="cls").attention
        strategy = overrides[0].split("=")[1]
        grid = (a.image_size // model.patch_size,) * 2
        masks = None if strategy == "none" else build_masker(strategy, prob=1.0, ratio_range=(0.3, 0.3))(
            n_images, grid, scores=scores, generator=torch.Generator().manual_seed(0))
        picture = attention_picture(x, scores, masks, IMAGENET_MEAN, IMAGENET_STD)
        save_image(torch.nn.functional.interpolate(picture[None], scale_factor=4, mode="nearest")[0],
                   out / f"attention_{budget_key(a)}_{v}.png")  # rows: image, attention (warm = high), chosen mask (grey)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--train-size", type=int, default=10000, help="pretraining images drawn from train_fit")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--recipe", type=Path, default=REPO / "configs" / "pretrain" / "demo_fmnist.yaml")
    p.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run (same budget)")
    p.add_argument("--bank-size", type=int, default=10000, help="k-NN bank / linear training images of train_fit")
    p.add_argument("--val-size", type=int, default=0, help="validation images (0: all 10000 of train_holdout)")
    p.add_argument("--knn-bank", type=int, default=5000, help="online k-NN (per epoch) bank size")
    p.add_argument("--knn-queries", type=int, default=2000, help="online k-NN (per epoch) validation images")
    p.add_argument("--linear-epochs", type=int, default=20)
    p.add_argument("--kinds", nargs="*", default=["cls_avg"], help="extra feature kinds for the k-NN (pooled always)")
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "fmnist_study")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fmnist_study")
    p.add_argument("--max-runs", type=int, default=0, help="stop after this many new runs (0: all)")
    p.add_argument("--table-only", action="store_true", help="rebuild table and plots, train nothing")
    p.add_argument("--train-only", action="store_true",
                   help="train and record runs only: no baselines, tables or plots (parallel workers of one "
                        "budget; run --table-only once they are done)")
    p.add_argument("--final-test", action="store_true", help="evaluate ONE finished variant (seeds) on the test split")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    a = parse(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    root = ensure_fashion_mnist(REPO / "data")
    jsonl = a.out / "results.jsonl"
    if a.final_test:
        if len(a.variants) != 1:
            raise SystemExit("--final-test evaluates the one chosen recipe: pass exactly one --variants")
        test_file = a.out / "test_results.jsonl"
        for seed in a.seeds:
            run_dir = a.runs / f"{a.variants[0]}_{budget_key(a)}_s{seed}"
            if any(r["run"] == run_dir.name for r in read_jsonl(test_file)):
                raise SystemExit(f"{run_dir.name} was already evaluated on the test split once: see {test_file}")
            res = {"run": run_dir.name, **evaluate(run_dir / "checkpoint.pt", root, a, test=True)}
            with test_file.open("a") as f:
                f.write(json.dumps(res) + "\n")
            print(json.dumps(res))
        return
    data = train_subset(root, a.train_size, a.runs / f"data_n{a.train_size}")
    plan = [(v, s) for s in a.seeds for v in a.variants]
    done = 0
    for variant, seed in plan:
        run_dir = a.runs / f"{variant}_{budget_key(a)}_s{seed}"
        if a.table_only:  # trains nothing, but records finished runs the JSONL misses
            record(jsonl, run_dir)
            continue
        recorded = {(r["variant"], r["seed"], r["budget"]) for r in read_jsonl(jsonl)}
        # finished earlier: in the JSONL (e.g. a committed one, run folders elsewhere), or its result.json
        # exists (then recorded now, if a crash came between the two writes)
        if (variant, seed, budget_key(a)) in recorded or record(jsonl, run_dir):
            continue
        if a.max_runs and done >= a.max_runs:
            break
        log.info("run %s (seed %d, %s)", variant, seed, budget_key(a))
        result = train_one(variant, seed, a, root, data, run_dir)
        (run_dir / "result.json").write_text(json.dumps(result, indent=1))
        record(jsonl, run_dir)
        done += 1
        if not a.train_only:
            write_tables(a.out, read_jsonl(jsonl), budget_key(a), plan)
    if a.train_only:  # parallel workers: the baselines and tables are made once, by --table-only
        return
    init_baselines(a, root, jsonl)
    rows = read_jsonl(jsonl)
    print(write_tables(a.out, rows, budget_key(a), plan))
    plot_curves(a.out, rows, budget_key(a))
    attention_maps(a.out, a.runs, root, a)


if __name__ == "__main__":
    main()
