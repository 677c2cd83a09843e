"""May this run start in its output folder? Checked before anything in the folder is touched.

A run resumes from the newest good checkpoint of ``run.output_dir``. If that checkpoint
recorded a different model, resuming would overwrite ``config.yaml`` and then fail deep inside
``load_state_dict``; :func:`check_resumable` says which keys differ and how to start fresh.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pretrain.config import PretrainConfig

# keys that decide the shapes of the saved tensors (the architecture and the objective)

from pretrain.configuration import ConfigError, to_dict

# keys that decide the shapes of the saved tensors (the architecture and the objective)
_MODEL_SECTIONS = ("model", "head")
_MODEL_KEYS = ("loss.method", "data.global_size")
_MAY_CHANGE_ON_RESUME = ("model.drop_path_rate", "model.attention")  # may change on a resume


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def model_keys(config: dict[str, Any]) -> dict[str, Any]:
    """The architecture-defining entries of a config dict (dotted keys)."""
    flat = _flat(config)
    return {k: v for k, v in flat.items()
            if (k.split(".")[0] in _MODEL_SECTIONS or k in _MODEL_KEYS) and k not in _MAY_CHANGE_ON_RESUME}


def check_resumable(cfg: PretrainConfig, ckpt: dict[str, Any], path: str | os.PathLike) -> None:
    """Raises :class:`ConfigError` if ``ckpt`` (found at ``path``) records a different model.

    Keys absent from the checkpoint's config (added to the project later) are not compared.
    """
    recorded = model_keys(ckpt.get("config") or {})
    current = model_keys(to_dict(cfg))
    differ = [k for k in sorted(recorded) if k in current and recorded[k] != current[k]]
    if not differ:
        return
    listing = "; ".join(f"{k}: checkpoint {recorded[k]!r}, now {current[k]!r}" for k in differ)
    name = (ckpt.get("model") or {}).get("name", recorded.get("model.name"))
    raise ConfigError(
        f"run.output_dir={cfg.run.output_dir} holds checkpoints of another model ({path}, architecture "
        f"{name!r}): {listing}. Nothing was changed there. Resume with the recorded values, or start "
        f"fresh with run.output_dir=<a new folder>")


def check_writable(output_dir: str | os.PathLike) -> None:
    """Raises :class:`ConfigError` naming ``run.output_dir`` if no file can be created in it."""
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"run.output_dir={out} is not writable ({exc.strerror or exc}): "
                          "choose another run.output_dir") from None
