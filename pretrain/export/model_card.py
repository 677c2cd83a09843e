"""The model card (``README.md``) of an exported backbone: architecture, training recipe, results.

The recipe is read from the checkpoint's saved config (our checkpoints hold the resolved config,
the step and the epoch); the results are the JSON files the evaluators wrote into the run folder
(the checkpoint's folder and, for ``<run>/checkpoints/step_*.pt``, ``<run>``). Nothing is
invented: a value the checkpoint does not record is written as "not recorded".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["evaluation_results", "model_card", "training_recipe"]

_RECIPE = (("method", "loss", "method"), ("masking", "mask", "strategy"), ("data set", "data", "dataset"),
           ("data root", "data", "root"), ("batch size", "data", "batch_size"), ("crop size", "data", "global_size"),
           ("epochs planned", "optim", "epochs"), ("learning rate", "optim", "lr"), ("seed", "run", "seed"))


def training_recipe(ckpt: Any) -> dict[str, Any]:
    """The recipe a checkpoint records: method, masking, data, steps ... (empty for foreign files)."""
    if not isinstance(ckpt, Mapping):
        return {}
    config = ckpt.get("config") if isinstance(ckpt.get("config"), Mapping) else {}
    recipe: dict[str, Any] = {}
    for label, section, key in _RECIPE:
        value = (config.get(section) or {}).get(key)
        if value is not None:
            recipe[label] = value
    for label, key in (("steps trained", "step"), ("epoch", "epoch")):
        if isinstance(ckpt.get(key), int):
            recipe[label] = ckpt[key]
    if "args" in ckpt:  # DINO / iBOT keep an argparse.Namespace
        recipe.update({k: v for k, v in vars(ckpt["args"]).items() if isinstance(v, (int, float, str))})
    return recipe


def _scalars(data: Any, prefix: str = "") -> dict[str, float]:
    """Numbers of a (nested) JSON object, keys joined with dots."""
    out: dict[str, float] = {}
    if isinstance(data, Mapping):
        for k, v in data.items():
            out.update(_scalars(v, f"{prefix}{k}."))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out[prefix.rstrip(".")] = float(data)
    return out


def evaluation_results(checkpoint: str | Path) -> dict[str, dict[str, float]]:
    """JSON file name -> its numbers, for the JSON files beside the checkpoint and in its run folder."""
    folder = Path(checkpoint).resolve().parent
    folders = [folder] + ([folder.parent] if folder.name == "checkpoints" else [])
    results: dict[str, dict[str, float]] = {}
    for f in sorted(p for d in folders for p in d.glob("*.json")):
        try:
            numbers = _scalars(json.loads(f.read_text()))
        except (OSError, ValueError) as exc:
            log.warning("model card: skipping %s (%s)", f, exc)
            continue
        if numbers:
            results[f.name] = numbers
    return results


def model_card(name: str, model_config: Mapping[str, Any], checkpoint: str | Path, ckpt: Any, which: str) -> str:
    """Markdown model card.

    Args:
        name: the registry name (e.g. ``vit_small``).
        model_config: every architecture key (:func:`pretrain.models.pretrained.model_config`).
        checkpoint: the source checkpoint file (its run folder is searched for results).
        ckpt: the loaded checkpoint (for the recipe).
        which: ``teacher`` or ``student``.
    """
    lines = [f"# {name} ({which} backbone)", "",
             f"Exported from `{checkpoint}` with `python -m pretrain.export`. Load it with "
             "`pretrain.models.from_pretrained(<this folder>)` or "
             "`torch.hub.load(<checkout>, '" + name + "', source='local', weights=<this folder>)`.", "",
             "## Architecture", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in model_config.items()]
    recipe = training_recipe(ckpt)
    lines += ["", "## Training", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in recipe.items()] if recipe else \
        ["not recorded (the checkpoint holds no training config)"]
    results = evaluation_results(checkpoint)
    lines += ["", "## Evaluation", ""]
    if not results:
        lines.append("no results found (no evaluator JSON beside the checkpoint or in its run folder)")
    for file, numbers in results.items():
        lines += [f"`{file}`:", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:g} |" for k, v in numbers.items()] + [""]
    return "\n".join(lines).rstrip() + "\n"
