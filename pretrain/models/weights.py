"""Loading pretrained weights into our ViT (the export to timm's layout: :mod:`pretrain.models.timm_export`).

Recognised inputs: our training checkpoints (``{"format": "attmask-ssl/1", "student": ...,
"teacher": ...}``), timm ViT state dicts, DINO / iBOT / DINOv2 checkpoints (dicts with
``teacher`` / ``student`` / ``state_dict`` / ``model`` entries, ``module.`` / ``backbone.``
prefixes; projection-head keys are dropped). Learned position tables are resampled to the
model's grid. Files are always read with ``torch.load(weights_only=True, map_location="cpu")``.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pretrain.checkpoint import CheckpointError  # the project's one checkpoint error type
from pretrain.models.pos_embed import infer_prefix_and_grid, resample_patch_pos_embed
from pretrain.models.registry import create_model
from pretrain.models.vit import VisionTransformer

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "LoadReport",
    "create_model_from_checkpoint",
    "load_pretrained",
    "read_checkpoint",
]

_PREFIXES = ("module.", "_orig_mod.", "backbone.", "encoder.")
_HEAD_PREFIXES = ("head.", "patch_head.", "head_drop.")
_RENAMES = {"masked_embed": "mask_token", "register_tokens": "reg_token"}
_STATE_KEYS = ("teacher", "student", "state_dict", "model", "module")


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    Attributes:
        missing: model keys that got no value (kept at their initialisation).
        unexpected: source keys the model has no place for (head keys are dropped silently).
        mismatched: (key, source shape, model shape) left at their initialisation.
        loaded: number of tensors copied.
        notes: adaptations made (position-table resampling, renamed keys ...).
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    loaded: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True if every model tensor was loaded."""
        return not self.missing and not self.mismatched


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True, map_location="cpu")`` with clear errors.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: truncated / corrupt file, or objects weights_only refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return _torch_load(path)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            raise CheckpointError(
                f"{path}: holds Python objects that torch.load(weights_only=True) refuses "
                f"({str(e).splitlines()[0]}); re-save only the tensors (a plain state dict)"
            ) from e
        raise CheckpointError(f"cannot read checkpoint {path}: file is truncated or corrupt ({e})") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(
            f"cannot read checkpoint {path}: file is truncated or corrupt ({type(e).__name__}: {e})"
        ) from e


def _torch_load(path: Path) -> Any:
    # DINO / iBOT checkpoints keep their argparse.Namespace of arguments next to the weights.
    if hasattr(torch.serialization, "safe_globals"):  # torch >= 2.5
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    torch.serialization.add_safe_globals([argparse.Namespace])
    return torch.load(path, map_location="cpu", weights_only=True)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _select_state_dict(obj: Any, which: str) -> Mapping[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a dict-like checkpoint or state dict, got {type(obj).__name__}")
    if str(obj.get("format", "")).startswith("attmask-ssl/"):
        if not _is_state_dict(obj.get(which)):
            raise CheckpointError(f"checkpoint has no {which!r} state dict; entries: {sorted(obj)}")
        return obj[which]
    for key in (which,) + _STATE_KEYS:
        if _is_state_dict(obj.get(key)):
            if key in ("teacher", "student") and key != which:
                logger.warning("checkpoint has no %r weights; loading %r instead", which, key)
            return obj[key]
    if _is_state_dict(obj):
        return obj
    raise CheckpointError(f"no state dict found in checkpoint; top-level entries: {sorted(obj)[:20]}")


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return _RENAMES.get(key, key)


def _adapt_pos_embed(src: torch.Tensor, model: VisionTransformer, notes: list[str]) -> torch.Tensor:
    """Map a source table (1, P' + g'*g', D) to the model's (1, num_cls + h*w, D)."""
    p_src, grid_src = infer_prefix_and_grid(src.shape[1], prefer_prefix=model.num_cls)
    patches = resample_patch_pos_embed(src[:, p_src:], grid_src, model.grid_hw, model.pos_embed_interp)
    if grid_src != model.grid_hw:
        notes.append(f"pos_embed resampled (bicubic, {model.pos_embed_interp!r}) from grid {grid_src} "
                     f"to {model.grid_hw}")
    if model.num_cls == 0:
        if p_src:
            notes.append(f"pos_embed: dropped {p_src} prefix row(s) (model has no [CLS] token)")
        return patches
    if p_src == 0:
        notes.append("pos_embed: source has no [CLS] row; using zeros for it")
        return torch.cat([patches.new_zeros(1, 1, patches.shape[-1]), patches], dim=1)
    if p_src > 1:
        notes.append(f"pos_embed: kept the first of {p_src} prefix rows as the [CLS] row")
    return torch.cat([src[:, :1].to(patches.dtype), patches], dim=1)


def load_pretrained(
    model: VisionTransformer, path_or_state_dict: str | Path | Mapping[str, Any], which: str = "teacher"
) -> LoadReport:
    """Load backbone weights into ``model`` (non-strict) and report what did not match.

    Args:
        model: the ViT to fill.
        path_or_state_dict: a checkpoint file, a loaded checkpoint dict, or a state dict.
        which: ``"teacher"`` or ``"student"`` for checkpoints that hold both.

    Returns:
        :class:`LoadReport`; the mismatches are also logged.
    """
    source = path_or_state_dict if isinstance(path_or_state_dict, Mapping) else read_checkpoint(path_or_state_dict)
    src = _select_state_dict(source, which)
    report = LoadReport()
    recorded = _recorded_kwargs(source)
    if recorded is not None:
        _match_recorded_options(model, recorded, src, report.notes)
    target = model.state_dict()
    selected: dict[str, torch.Tensor] = {}
    for raw_key, value in src.items():
        key = _strip(raw_key)
        if key.startswith(_HEAD_PREFIXES):
            continue
        if ".attn.qkv." in key and key.replace(".qkv.", ".qv.") in target:
            # standard weights into a manifold-key model: reuse the query and value slices
            q, _, v = value.chunk(3, dim=0)
            key, value = key.replace(".qkv.", ".qv."), torch.cat([q, v], dim=0)
            if "qkv -> qv" not in " ".join(report.notes):
                report.notes.append("attn.qkv -> qv: query/value slices loaded; manifold keys keep their init")
        if key not in target:
            if key == "mask_token":  # iBOT's masked-image token: pretraining only, a frozen backbone has none
                report.notes.append("mask_token: a pretraining-only tensor, not used by this model")
                continue
            report.unexpected.append(raw_key)
            continue
        if key == "pos_embed" and value.shape != target[key].shape and value.ndim == 3:
            value = _adapt_pos_embed(value, model, report.notes)
        if key == "mask_token" and value.numel() == target[key].numel():
            value = value.reshape(target[key].shape)
        if key == "simpool.beta" and value.shape == (1,) and target[key].ndim == 1:
            value = value.expand(target[key].shape)  # a scalar beta into a per-channel one: same function
            if target[key].numel() > 1:
                report.notes.append("simpool.beta: scalar broadcast to the model's per-channel beta")
        if value.shape != target[key].shape:
            report.mismatched.append((raw_key, tuple(value.shape), tuple(target[key].shape)))
            continue
        selected[key] = value
    model.load_state_dict(selected, strict=False)
    report.loaded = len(selected)
    report.missing = [k for k in target if k not in selected]
    _log_report(report, which)
    return report


def _recorded_kwargs(source: Any) -> dict[str, Any] | None:
    """The model kwargs one of our checkpoints records, or None for any other source."""
    if not (isinstance(source, Mapping) and str(source.get("format", "")).startswith("attmask-ssl/")):
        return None
    arch = source.get("model")
    return dict(arch.get("kwargs") or {}) if isinstance(arch, Mapping) else None


def _old_checkpoint_options(kwargs: Mapping[str, Any], src: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Options that our checkpoints written before issue 11 imply but do not record.

    They resampled position tables to exactly g x g (``pos_embed_interp="exact"``) and had a
    per-channel SimPool beta (``simpool_beta="channel"``, recognised by its (D,) shape).
    """
    implied = {}
    if "pos_embed_interp" not in kwargs:
        implied["pos_embed_interp"] = "exact"
    if "simpool_beta" not in kwargs:
        beta = next((v for k, v in src.items() if _strip(k) == "simpool.beta"), None)
        if beta is not None and beta.ndim == 1 and beta.numel() > 1:
            implied["simpool_beta"] = "channel"
    return implied


def _match_recorded_options(model: VisionTransformer, kwargs: Mapping[str, Any],
                            src: Mapping[str, torch.Tensor], notes: list[str]) -> None:
    """Give ``model`` the resampling mode and SimPool beta layout the checkpoint was trained with."""
    options = {**{k: kwargs[k] for k in ("pos_embed_interp", "simpool_beta") if k in kwargs},
               **_old_checkpoint_options(kwargs, src)}
    mode = options.get("pos_embed_interp")
    if mode is not None and mode != model.pos_embed_interp:
        model.pos_embed_interp = mode
        _record_option(model, "pos_embed_interp", mode)
        notes.append(f"pos_embed_interp set to {mode!r} as the checkpoint was trained with it")
    pool = model.simpool
    if options.get("simpool_beta") == "channel" and pool is not None and pool.beta is not None \
            and pool.beta.numel() == 1:
        pool.beta = torch.nn.Parameter(pool.beta.detach().expand(model.embed_dim).clone())
        pool.beta_mode = "channel"
        _record_option(model, "simpool_beta", "channel")
        notes.append("simpool_beta set to 'channel': the checkpoint has a per-channel beta (before issue 11)")


def _record_option(model: VisionTransformer, key: str, value: str) -> None:
    for record in (getattr(model, "numeric_options", None), getattr(model, "model_kwargs", None)):
        if isinstance(record, dict):
            record[key] = value


def _log_report(report: LoadReport, which: str) -> None:
    logger.info("load_pretrained(%s): loaded %d tensors", which, report.loaded)
    for note in report.notes:
        logger.info("load_pretrained: %s", note)
    if report.missing:
        logger.warning("load_pretrained: %d model keys not in checkpoint: %s", len(report.missing), report.missing)
    if report.unexpected:
        logger.warning("load_pretrained: %d checkpoint keys unused: %s", len(report.unexpected), report.unexpected)
    for key, s, t in report.mismatched:
        logger.warning("load_pretrained: shape mismatch for %s: checkpoint %s vs model %s", key, s, t)


def create_model_from_checkpoint(path: str | Path, which: str = "teacher") -> tuple[VisionTransformer, LoadReport]:
    """Rebuild the backbone recorded in one of our checkpoints and load its weights.

    Checkpoints written before issue 11 record no ``pos_embed_interp`` / ``simpool_beta``: they
    are rebuilt with ``"exact"`` and, if their SimPool beta has shape (D,), ``"channel"``, so
    their outputs do not change.

    Raises:
        CheckpointError: if the file has no ``"model": {"name", "kwargs"}`` entry.
    """
    ckpt = read_checkpoint(path)
    arch = ckpt.get("model") if isinstance(ckpt, Mapping) else None
    if not (isinstance(arch, Mapping) and "name" in arch):
        raise CheckpointError(
            f"{path} records no architecture (no 'model': {{'name', 'kwargs'}} entry, so not an attmask-ssl "
            "checkpoint); build the model with create_model(...) and call load_pretrained(model, path)"
        )
    kwargs = dict(arch.get("kwargs") or {})
    # checkpoints written before issue 11 do not record these; they keep their old behaviour
    kwargs.update(_old_checkpoint_options(kwargs, _select_state_dict(ckpt, which)))
    model = create_model(arch["name"], **kwargs)
    return model, load_pretrained(model, ckpt, which)
