"""Export a pretrained backbone: a safetensors folder with a model card, a timm state dict, or ONNX.

Usage::

    python -m pretrain.export --checkpoint runs/x/checkpoint.pt --format safetensors --output exported/x
    python -m pretrain.export --checkpoint runs/x/checkpoint.pt --format timm --output vit_s.safetensors
    python -m pretrain.export --checkpoint runs/x/checkpoint.pt --format onnx --output vit_s.onnx --attention
    python -m pretrain.export --checkpoint dino_deitsmall16_pretrain.pth model.name=vit_small --format onnx ...

Our checkpoints record their architecture; DINO / iBOT / timm files need ``model.name=...``
(and ``model.patch_size=...`` ..., the pretraining ``model:`` keys, plus ``model.img_size``). ``--which student`` exports
the student (default: teacher). Every output is checked before the command ends (the rebuilt
folder, timm's model, onnxruntime) and the measured differences are printed. See docs/export.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from pretrain.configuration import ConfigError, choice, load_config
from pretrain.export.clean_exit import run_cleanly
from pretrain.export.onnx_export import DEFAULT_OPSET
from pretrain.export.source import ExportModel, load_backbone
from pretrain.models.weights import read_checkpoint

log = logging.getLogger(__name__)

__all__ = ["ExportConfig", "main", "run"]


@dataclass
class ExportConfig:
    checkpoint: str = ""
    format: str = choice("safetensors", "timm", "onnx")
    output: str = ""  # safetensors: a folder; timm: a .safetensors / .pth file; onnx: a .onnx file
    which: str = choice("teacher", "student")
    model: ExportModel = field(default_factory=ExportModel)  # name=... (+ options) for DINO / iBOT / timm files
    attention: bool = False  # onnx: also output the (B, N) [CLS] / SimPool attention map
    opset: int = DEFAULT_OPSET  # onnx opset
    check_sizes: list[int] = field(default_factory=list)  # onnx: image sides checked (default: size, 1.5x)


def _safetensors(cfg: ExportConfig, model: torch.nn.Module, ckpt: Any) -> dict[str, Any]:
    from pretrain.export.model_card import model_card
    from pretrain.models.pretrained import from_pretrained, model_config, save_pretrained

    card = model_card(model.model_name, model_config(model), cfg.checkpoint, ckpt, cfg.which)
    save_pretrained(model, cfg.output, card, extra={"source": {"checkpoint": cfg.checkpoint, "which": cfg.which}})
    x = torch.randn(2, 3, *model.img_hw, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((from_pretrained(cfg.output)(x) - model(x)).abs().max())
    return {"folder": cfg.output, "max_abs_diff_rebuilt": diff}


def _timm(cfg: ExportConfig, model: torch.nn.Module, ckpt: Any) -> dict[str, Any]:
    import timm

    from pretrain.export.to_timm import export_timm, timm_name

    path, call = export_timm(model, cfg.output)
    kwargs = {} if model.img_hw == (224, 224) else {"img_size": model.img_hw}
    ref = timm.create_model(timm_name(model), pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)},
                            **kwargs).eval()
    x = torch.randn(1, 3, *model.img_hw, generator=torch.Generator().manual_seed(0))
    model.set_attention("fused")  # timm's path (SDPA): the same kernels, so the same bits
    with torch.no_grad():
        diff = float((ref(x) - model(x)).abs().max())
    return {"file": str(path), "load_with": call, "max_abs_diff_timm": diff}


def _onnx(cfg: ExportConfig, model: torch.nn.Module, ckpt: Any) -> dict[str, Any]:
    from pretrain.export.onnx_export import export_onnx

    report = export_onnx(model, cfg.output, cfg.opset, cfg.attention, tuple(cfg.check_sizes))
    return {"file": str(report.path), "opset": report.opset, "outputs": list(report.outputs),
            "max_abs_diff_onnxruntime": {f"{s}px": d for s, d in report.max_abs_diff.items()}}


_WRITERS = {"safetensors": _safetensors, "timm": _timm, "onnx": _onnx}


def run(cfg: ExportConfig) -> dict[str, Any]:
    """Build the backbone of ``cfg.checkpoint``, write ``cfg.format`` to ``cfg.output``, check it.

    Returns:
        what was written and the measured max abs differences.

    Raises:
        FileNotFoundError / ValueError: a missing or foreign checkpoint without ``model.name``,
            or a backbone the format cannot express (the message names the option).
    """
    if not cfg.checkpoint or not cfg.output:
        raise ValueError("give --checkpoint FILE and --output PATH (and --format safetensors|timm|onnx)")
    ckpt = read_checkpoint(cfg.checkpoint)
    model = load_backbone(cfg.checkpoint, ckpt, cfg.model, cfg.which)
    return {"format": cfg.format, "model": model.model_name, **_WRITERS[cfg.format](cfg, model, ckpt)}


def _parse(argv: Sequence[str] | None) -> ExportConfig:
    """Flags and ``key=value`` overrides (``model.name=vit_small`` ...) -> a checked :class:`ExportConfig`."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="key=value: any ExportConfig "
                                     "key, e.g. model.name=vit_small model.patch_size=16 check_sizes=[224,320]")
    for flag in ("checkpoint", "format", "output", "which", "opset"):
        parser.add_argument(f"--{flag}")
    parser.add_argument("--attention", action="store_true", help="onnx: also output the attention map")
    parser.add_argument("--config", help="YAML file of ExportConfig overrides")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    flags = [f"{k}={v}" for k, v in vars(args).items() if k not in ("overrides", "config") and v not in (None, False)]
    try:
        return load_config(ExportConfig, args.config, flags + args.overrides)
    except ConfigError as exc:
        parser.exit(2, f"config error: {exc}\n")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pretrain.export --checkpoint F --format F --output P [--which student] [--attention]``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = _parse(argv)
    result = run_cleanly(lambda: run(cfg))
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
