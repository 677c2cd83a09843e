"""Background robustness (ImageNet-9 Backgrounds Challenge) and AttMask's masked-image test on frozen features.

Usage::

    python -m downstream.robustness --checkpoint runs/x/checkpoint.pt data.root=data/locbench/bg \
        data.image_size=112 --output robustness.json

A linear probe (grid of learning rates, :func:`downstream.linear.train_heads`, chosen on a held-out
part of the training images) is trained on the pooled features of ``original/train`` and tested on
every variant's ``val`` folder: per-variant top-1 and BG-Gap = mixed_same - mixed_rand. With
``head=in1k`` a 1000-class linear head (``in1k_head=head.pt``: weight (1000, D), bias) is mapped to
the 9 classes through ``in_to_in9=in_to_in9.json`` instead (AttMask / MadryLab protocol). The masked
test hides the top-r attended patches of ``original/val`` and reports the accuracy drop (and a
random-patch control). Definitions: docs/localization.md.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.backbone import ModelSpec, build_backbone
from pretrain.distributed import select_device
from downstream.checks import handle_nonfinite
from downstream.eval_data import skipped_files
from downstream.image_input import ImageInput
from downstream.linear.probe import DEFAULT_LRS, fit_probe
from downstream.robustness.masked import PatchHiding
from downstream.robustness.data import folder_loader, load_in_to_in9, map_to_in9
from downstream.results import log_results, tensorboard_dir, write_json
from downstream.settings import EvalSettings
from pretrain.configuration import ConfigError, choice, register_check
from pretrain.export.clean_exit import run_cleanly
from pretrain.features import extract

log = logging.getLogger(__name__)

__all__ = ["CONFIG", "RobustnessConfig", "main", "run"]

VARIANTS = ("original", "only_fg", "no_fg", "only_bg_b", "only_bg_t", "mixed_same", "mixed_rand", "mixed_next")


@dataclass
class BgDataConfig(ImageInput):
    root: str = ""  # the challenge folder: <root>/<variant>/val/<class>/
    train_root: str = ""  # probe training images (default <root>/original/train)
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    batch_size: int = 64


@dataclass
class RobustnessConfig(EvalSettings):
    checkpoint: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    data: BgDataConfig = field(default_factory=BgDataConfig)
    head: str = choice("probe", "in1k")  # probe (linear probe on original/train) | in1k (1000-class head + in_to_in9)
    in1k_head: str = ""  # .pt state dict with weight (1000, D) and bias (1000,)
    in_to_in9: str = ""  # in_to_in9.json
    lrs: list[float] = field(default_factory=lambda: list(DEFAULT_LRS))
    epochs: int = 100
    probe_batch_size: int = 256
    val_fraction: float = 0.1
    masked_ratios: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5])  # [] skips the test
    seed: int = 0
    pictures: bool = True
    amp: str = choice("none", "auto", "bf16", "fp16")  # none: float32, this evaluator's default


CONFIG = RobustnessConfig


def check_robustness(cfg: RobustnessConfig) -> None:
    """Cross-field checks, run when the config is parsed (before any image is read)."""
    unknown = [v for v in cfg.data.variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"data.variants: {unknown} unknown; choose from {', '.join(VARIANTS)}")
    bad = [r for r in cfg.masked_ratios if not 0 <= r <= 1]
    if bad:
        raise ConfigError(f"masked_ratios must lie in [0, 1], got {bad}")
    if cfg.head == "in1k" and not (cfg.in1k_head and cfg.in_to_in9):
        raise ConfigError("head=in1k needs in1k_head=<head.pt> and in_to_in9=<in_to_in9.json>")


register_check(RobustnessConfig, check_robustness)


def pooled_features(model: torch.nn.Module, loader, cfg: RobustnessConfig, device: torch.device,
                    desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D) float32, labels (N,)) of a uint8 loader through :func:`pretrain.features.extract`.

    NaN / infinite rows are an error naming them (:func:`downstream.checks.handle_nonfinite`).
    """
    feats, labels = extract(model, loader, ["pooled"], device, cfg.amp, cfg.data.mean, cfg.data.std, cfg.progress,
                            desc)
    x, y, _ = handle_nonfinite(torch.from_numpy(feats["pooled"]), torch.from_numpy(labels), f"{desc} features",
                               "error")
    return x, y


def train_probe(feats: torch.Tensor, labels: torch.Tensor, cfg: RobustnessConfig, device) -> tuple:
    """Linear heads on ``feats`` for every lr; the best on a held-out ``val_fraction`` -> (module, head index, val top-1)."""
    g = torch.Generator().manual_seed(cfg.seed)
    perm = torch.randperm(len(labels), generator=g)
    n_val = max(1, int(cfg.val_fraction * len(labels)))
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    x, y = feats[tr_idx], labels[tr_idx]
    bs = min(cfg.probe_batch_size, len(y))

    def source(batch_size, generator):  # full batches only
        order = torch.randperm(len(y), generator=generator)
        for s in range(0, len(y) - batch_size + 1, batch_size):
            idx = order[s:s + batch_size]
            yield {"pooled": x[idx]}, y[idx]

    fit = fit_probe(source, {"pooled": x.shape[1]}, int(labels.max()) + 1, max(1, len(y) // bs),
                    {"pooled": feats[val_idx]}, labels[val_idx], cfg.lrs, cfg.epochs, bs, device, cfg.seed,
                    cfg.progress)
    return fit.head, fit.index, float(fit.val["pooled"][fit.index, 0])


def _classifier(cfg: RobustnessConfig, train_feats, train_labels, device):
    if cfg.head == "in1k":
        state = torch.load(cfg.in1k_head, map_location="cpu", weights_only=True)
        w = next(v for k, v in state.items() if k.endswith("weight"))
        b = next(v for k, v in state.items() if k.endswith("bias"))
        if w.shape[0] != 1000:
            raise ValueError(f"{cfg.in1k_head}: weight {tuple(w.shape)} is not a 1000-class head")
        table = load_in_to_in9(cfg.in_to_in9)
        return (lambda f: map_to_in9(f @ w.T.to(f) + b.to(f), table)), {"head": "in1k + in_to_in9"}
    if cfg.head != "probe":
        raise ValueError(f"head must be probe or in1k, got {cfg.head!r}")
    module, h, val_top1 = train_probe(train_feats, train_labels, cfg, device)
    module = module.cpu()
    return (lambda f: module(f)[:, h].argmax(-1)), {"head": "probe", "lr": cfg.lrs[h], "val_top1": val_top1}


def _classes(root: Path) -> list[str]:
    """The class folder names of ``root/original/val`` (sorted): every other set must hold exactly these."""
    val = root / "original" / "val"
    if not val.is_dir():
        raise FileNotFoundError(f"{val} not found: data.root must be a Backgrounds Challenge folder "
                                "(<root>/<variant>/val/<class>/; build one with python -m downstream.localization.synth)")
    classes = sorted(p.name for p in val.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"{val} holds no class folder (<class>/<image>)")
    return classes


def _top1(predict, feats: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return 100.0 * float((predict(feats) == labels).double().mean())


def run(cfg: RobustnessConfig) -> dict:
    """Per-variant top-1, BG-Gap and the masked-image test; writes JSON, config, TensorBoard and a picture.

    Returns:
        ``{"probe", "top1": {variant: %}, "images": {"train", variant: rows evaluated}, "skipped": {"train",
        variant: unreadable files left out}, "BG_Gap", "masked"}``.

    Raises:
        FileNotFoundError: ``data.root``, ``original/val``, a variant's ``val`` folder or a class folder in
            any of them missing or empty (named), so no class is left out of an accuracy silently.
    """
    d = cfg.data
    if not d.root:
        raise ValueError("give data.root=<Backgrounds Challenge folder> (build one: python -m downstream.localization.synth)")
    root = Path(d.root)
    classes = _classes(root)
    for v in d.variants:  # every folder before any image is encoded
        if not (root / v / "val").is_dir():
            raise FileNotFoundError(f"variant folder {root / v / 'val'} not found: build the benchmark with python -m "
                                    f"downstream.localization.synth, or leave {v} out of data.variants")

    def loader(folder):
        return folder_loader(folder, d.image_size, d.batch_size, d.num_workers, classes)

    loaders = {v: loader(root / v / "val") for v in d.variants}  # class folders checked here, before encoding
    train_loader = loader(d.train_root or root / "original" / "train") if cfg.head == "probe" else None
    device = select_device(cfg.device)
    model = build_backbone(cfg.checkpoint, cfg.model, d.image_size).to(device)
    tr_f = tr_y = None
    results: dict = {"probe": {}, "top1": {}, "images": {}, "skipped": {}}
    if train_loader is not None:
        tr_f, tr_y = pooled_features(model, train_loader, cfg, device, "train features")
        results["images"]["train"], results["skipped"]["train"] = len(tr_y), len(skipped_files(train_loader))
    predict, probe_info = _classifier(cfg, tr_f, tr_y, device)
    results["probe"] = probe_info
    cache = {}
    for v in d.variants:
        f, y = pooled_features(model, loaders[v], cfg, device, v)
        cache[v] = (f, y)
        results["top1"][v] = _top1(predict, f, y)
        results["images"][v], results["skipped"][v] = len(y), len(skipped_files(loaders[v]))
    if "mixed_same" in results["top1"] and "mixed_rand" in results["top1"]:
        results["BG_Gap"] = results["top1"]["mixed_same"] - results["top1"]["mixed_rand"]
    if cfg.masked_ratios:
        results["masked"] = _masked_test(cfg, model, loader(root / "original" / "val"), predict, device,
                                         results["top1"].get("original"))
    if cfg.output:
        write_json(cfg.output, results)
        save_beside(cfg, cfg.output)
        if cfg.pictures:
            from downstream.robustness.pictures import variant_row

            variant_row(root, d.variants, classes, {v: predict(cache[v][0][:1])[0].item() for v in d.variants},
                        Path(cfg.output).with_suffix(".png"), d.image_size)
    log_results(tensorboard_dir(cfg.tensorboard, cfg.output), results, "robustness")
    return results


def _masked_test(cfg, model, loader, predict, device, base: float | None) -> dict:
    out = {}
    g = torch.Generator().manual_seed(cfg.seed)
    for r in cfg.masked_ratios:
        if not 0 <= r <= 1:
            raise ValueError(f"masked_ratios must lie in [0, 1], got {r}")
        row = {}
        for kind, rand in (("top_attended", False), ("random", True)):
            hiding = PatchHiding(model, r, cfg.data.mean, cfg.data.std, rand, g)
            f, y = pooled_features(hiding, loader, cfg, device, f"masked {r:g} {kind}")
            row[f"{kind}_top1"] = _top1(predict, f, y)
            if base is not None and not math.isnan(base):
                row[f"{kind}_drop"] = base - row[f"{kind}_top1"]
        out[f"ratio={r:g}"] = row
    return out


ALIASES = {"--checkpoint": "checkpoint", "--output": "output", "--device": "device"}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.robustness --config FILE key=value ...``; prints the table."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(RobustnessConfig, argv, ALIASES, __doc__)
    res = run_cleanly(lambda: run(cfg))  # a missing folder or an empty class: one error line, exit status 2
    print("  ".join(f"{v} {a:.1f}" for v, a in res["top1"].items()) +
          (f"  BG-Gap {res['BG_Gap']:.1f}" if "BG_Gap" in res else ""), file=sys.stdout)


if __name__ == "__main__":
    main()
