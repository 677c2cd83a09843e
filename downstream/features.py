"""Extract frozen-backbone features from a checkpoint on a labelled dataset, and save/load them.

Any checkpoint :func:`pretrain.models.load_pretrained` accepts works: our training checkpoints
(``<output_dir>/checkpoint.pt``; the architecture is read from the file), timm ViT state dicts and
DINO / iBOT / DINOv2 checkpoints (these carry no architecture: set ``model.name``,
``model.patch_size``, ...). Prefixes such as ``module.`` / ``backbone.`` are stripped and the
load report (missing / unexpected keys) is logged; a load that matches nothing is an error.

Feature kinds (D = embedding width):
    ``pooled``   the model's pooled vector ([CLS], mean of patches, or SimPool), (N, D)
    ``cls``      [CLS] of the last block, (N, D)
    ``avg``      mean of the last block's patch tokens, (N, D)
    ``cls_avg``  [CLS] and patch mean concatenated, (N, 2D)      (DINO linear, avgpool)
    ``cls4``     [CLS] of the last 4 blocks concatenated, (N, 4D) (DINO linear, ViT-S)
    ``cls4_avg`` ``cls4`` and the last block's patch mean, (N, 5D)

Usage::

    python -m downstream.features --checkpoint runs/x/checkpoint.pt data.dataset=fashion_mnist \
        data.root=/usr/share/datasets/fashion-mnist data.split=test --output test.npz
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.eval_data import DataSpec, build_eval_loader_for
from pretrain.data.transforms import normalize_on_device

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("pooled", "cls", "avg", "cls_avg", "cls4", "cls4_avg")


@dataclass
class ModelSpec:
    """Backbone to evaluate. ``name`` empty: rebuild it from our checkpoint; ``pixels``: raw pixels."""

    name: str = ""
    which: str = "teacher"  # teacher | student (checkpoints holding both)
    patch_size: int = 16
    pooling: str = "cls"  # cls | gap | simpool
    pos_embed: str = "learned"
    key_variant: str = "standard"
    num_charts: int = 4
    num_registers: int = 0
    simpool_gamma: Optional[float] = None


@dataclass
class FeaturesConfig:
    checkpoint: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    kind: str = "pooled"
    output: str = ""  # .npz or .pt
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto (bf16 on CUDA) | bf16 | none
    progress: bool = True


CONFIG = FeaturesConfig


class RawPixels(nn.Module):
    """A 'backbone' whose features are the image pixels scaled to 0..1: the k-NN baseline."""

    takes_uint8 = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().flatten(1) / 255.0


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def input_size(model: nn.Module, requested: int) -> int:
    """The evaluation image side: ``requested`` if > 0, else the model's own input size (224 for pixels)."""
    if requested > 0:
        return requested
    return int(getattr(model, "img_hw", (224, 224))[0])


def build_backbone(checkpoint: str, spec: ModelSpec, image_size: int = 0) -> nn.Module:
    """The frozen backbone in eval mode, with the checkpoint's weights.

    Args:
        checkpoint: Weights file ("" = random initialisation, with a warning).
        spec: Architecture (ignored for our checkpoints when ``spec.name`` is empty).
        image_size: Input size of a model built from ``spec`` (0 = 224).

    Raises:
        ValueError: No model name for a checkpoint without architecture, or nothing loaded.
    """
    from pretrain.models import create_model, create_model_from_checkpoint, load_pretrained

    if spec.name == "pixels":
        return RawPixels().eval()
    if not spec.name:
        if not checkpoint:
            raise ValueError("give checkpoint=<file> (our checkpoint records its model), or model.name=vit_small "
                             "etc. for random weights / timm / DINO checkpoints, or model.name=pixels")
        try:
            model, report = create_model_from_checkpoint(checkpoint, which=spec.which)
        except ValueError as exc:  # CheckpointError: no architecture recorded
            raise ValueError(f"{exc}\nSet model.name (e.g. vit_small), model.patch_size, model.pooling ... for "
                             "this checkpoint") from None
    else:
        kwargs = dict(patch_size=spec.patch_size, img_size=image_size or 224, pooling=spec.pooling,
                      pos_embed=spec.pos_embed, key_variant=spec.key_variant, num_charts=spec.num_charts,
                      num_registers=spec.num_registers, simpool_gamma=spec.simpool_gamma)
        model = create_model(spec.name, **kwargs)
        report = load_pretrained(model, checkpoint, which=spec.which) if checkpoint else None
        if report is None:
            log.warning("no checkpoint given: evaluating a randomly initialised %s", spec.name)
    if report is not None and report.loaded == 0:
        raise ValueError(f"no tensor of {checkpoint} matched the model ({len(report.unexpected)} unused keys, "
                         f"e.g. {report.unexpected[:3]}); check model.name / model.patch_size / model.pooling")
    return model.eval().requires_grad_(False)


def represent(model: nn.Module, images: torch.Tensor, kinds: Sequence[str],
              mean: Sequence[float], std: Sequence[float]) -> dict[str, torch.Tensor]:
    """Feature vectors of a uint8 image batch (B, 3, H, W) for each requested kind -> {kind: (B, D_kind)}."""
    if getattr(model, "takes_uint8", False):
        flat = model(images)
        return {kind: flat for kind in kinds}
    x = normalize_on_device(images, tuple(mean), tuple(std))
    out: dict[str, torch.Tensor] = {}
    if "pooled" in kinds:
        out["pooled"] = model.forward_features(x).pooled
    token_kinds = [k for k in kinds if k != "pooled"]
    if not token_kinds:
        return out
    if any(k.startswith("cls") for k in token_kinds) and getattr(model, "num_cls", 1) == 0:
        raise ValueError(f"feature kinds {token_kinds} need a [CLS] token but this model has none "
                         "(pooling=simpool): use kind=pooled or kind=avg")
    n_blocks = 4 if any(k.startswith("cls4") for k in token_kinds) else 1
    layers = model.get_intermediate_layers(x, n=n_blocks)
    p = model.num_prefix_tokens
    avg = layers[-1][:, p:].mean(dim=1)
    cls_last, cls_all = layers[-1][:, 0], [t[:, 0] for t in layers]
    table = {"cls": lambda: cls_last, "avg": lambda: avg, "cls_avg": lambda: torch.cat([cls_last, avg], 1),
             "cls4": lambda: torch.cat(cls_all, 1), "cls4_avg": lambda: torch.cat(cls_all + [avg], 1)}
    out.update({k: table[k]() for k in token_kinds})
    return out


@torch.no_grad()
def extract(model: nn.Module, loader, kinds: Sequence[str] = ("pooled",), device: str | torch.device = "cpu",
            amp: str = "auto", mean: Sequence[float] = (0.485, 0.456, 0.406),
            std: Sequence[float] = (0.229, 0.224, 0.225), progress: bool = True,
            desc: str = "features") -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run the frozen model over a loader of (uint8 (B, 3, H, W), int64 (B,)) batches.

    Returns:
        ({kind: float32 (N, D_kind)}, labels int64 (N,)), in loader order.
    """
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown feature kind {kind!r}; choose one of {', '.join(KINDS)}")
    device = torch.device(device)
    model = model.to(device)
    use_bf16 = amp == "bf16" or (amp == "auto" and device.type == "cuda")
    # Rows are written into arrays sized from the dataset length when it is known, so the
    # features are held once (no list of batches + concatenated copy at the end).
    total = len(loader.dataset) if hasattr(loader, "dataset") else None
    out: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    labels: list[np.ndarray] = []
    filled = 0
    for images, targets in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        images = images.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            feats = represent(model, images, kinds, mean, std)
        n = images.shape[0]
        for k, v in feats.items():
            v = v.float().cpu().numpy()
            if total is None:
                out[k].append(v)
                continue
            if not out[k]:
                out[k].append(np.empty((total, v.shape[1]), dtype=np.float32))
            out[k][0][filled:filled + n] = v
        labels.append(np.asarray(targets, dtype=np.int64))
        filled += n
    if not labels:
        raise ValueError("the dataset is empty: no features extracted")
    if total is not None:
        return {k: v[0][:filled] for k, v in out.items()}, np.concatenate(labels)
    return {k: np.concatenate(v) for k, v in out.items()}, np.concatenate(labels)


def save_features(path: str | Path, features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> Path:
    """Write ``features`` (N, D) and ``labels`` (N,) to ``.npz`` or ``.pt`` (by suffix)."""
    path = Path(path)
    features, labels = np.asarray(features, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"need features (N, D) and labels (N,), got {features.shape} and {labels.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, features=features, labels=labels)
    elif path.suffix == ".pt":
        torch.save({"features": torch.from_numpy(features), "labels": torch.from_numpy(labels)}, path)
    else:
        raise ValueError(f"feature file {path} must end in .npz or .pt")
    return path


def load_features(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a feature file written by :func:`save_features`: (features float32 (N, D), labels int64 (N,))."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file {path} not found (write one with python -m downstream.features)")
    if path.suffix == ".npz":
        with np.load(path) as data:
            content = {k: torch.from_numpy(data[k]) for k in data.files}
    elif path.suffix == ".pt":
        content = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"feature file {path} must end in .npz or .pt")
    if not isinstance(content, dict) or "features" not in content or "labels" not in content:
        raise ValueError(f"{path} must hold 'features' (N, D) and 'labels' (N,); found {sorted(content)}")
    feats, labels = content["features"].float(), content["labels"].long()
    if feats.ndim != 2 or labels.shape != (feats.shape[0],):
        raise ValueError(f"{path}: features {tuple(feats.shape)} and labels {tuple(labels.shape)} do not match")
    return feats, labels


def extract_dataset(checkpoint: str, model_spec: ModelSpec, data: DataSpec, kinds: Sequence[str],
                    role: str, device: str = "auto", amp: str = "auto",
                    progress: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Build the backbone and the evaluation loader for ``role`` (train/test) and extract features."""
    dev = resolve_device(device)
    model = build_backbone(checkpoint, model_spec, data.image_size)
    loader = build_eval_loader_for(data, role, input_size(model, data.image_size), pin_memory=dev.type == "cuda")
    return extract(model, loader, kinds, dev, amp, data.mean, data.std, progress, desc=f"{role} features")


def run(cfg: FeaturesConfig) -> dict:
    """Extract ``cfg.kind`` features of ``cfg.data`` and write them to ``cfg.output``."""
    # role "train" only sets the default split; data.split=test / val picks another one.
    feats, labels = extract_dataset(cfg.checkpoint, cfg.model, cfg.data, [cfg.kind], "train", cfg.device,
                                    cfg.amp, cfg.progress)
    result = {"n": int(labels.shape[0]), "dim": int(feats[cfg.kind].shape[1]), "kind": cfg.kind}
    if cfg.output:
        result["output"] = str(save_features(cfg.output, feats[cfg.kind], labels))
        save_beside(cfg, cfg.output)
    else:
        log.warning("no output= given: features were computed but not saved")
    return result


ALIASES = {"--checkpoint": "checkpoint", "--output": "output", "--kind": "kind", "--device": "device"}


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m downstream.features --config FILE key=value ... [--checkpoint F --output F.npz]``.

    Returns None (a console script passes the return value to sys.exit).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(FeaturesConfig, argv, ALIASES, __doc__)
    result = run(cfg)
    print(result, file=sys.stdout)


if __name__ == "__main__":
    main()
