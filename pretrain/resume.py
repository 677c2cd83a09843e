"""May this run start in its output folder? Checked before anything in the folder is touched.

A run resumes from the newest good checkpoint of ``run.output_dir``. Resuming is only right when
the new command describes the same run, so the recorded config is compared with the new one:

- **model keys** (the ``model`` and ``head`` sections, ``loss.method``, ``data.global_size``) decide
  the shapes of the saved tensors: a change would fail deep inside ``load_state_dict``;
- **schedule keys** (:data:`SCHEDULE_KEYS`: batch size, epochs, seed, learning-rate / weight-decay /
  teacher schedules, data set and split, loader) decide the step count, every schedule and the
  order of the samples: a change would continue silently with schedules cut short or stretched
  and with samples of the interrupted epoch seen twice (a batch-8 run of 66 steps resumed at
  batch 4 ended at step 44 of 66);
- the **data size** (recorded in the checkpoint; ``data.root`` may move) decides the steps per
  epoch: compared once the loader is built (:func:`check_same_data_size`).

Any of these is refused by :func:`check_resumable` with one :class:`ConfigError` naming every
changed key with both values and the two ways forward: the recorded values, or a new
``run.output_dir``. Every other key may change on a resume (progress, logging, checkpointing,
``data.num_workers``, ``knn.*``, the augmentation, ...); the changed ones are returned so the
trainer logs them (docs/failures.md lists both groups).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pretrain.checkpoint import existing_folder, files_per_run, free_bytes, held_bytes, space_needed
from pretrain.config import PretrainConfig
from pretrain.configuration import ConfigError, to_dict

# keys that decide the shapes of the saved tensors (the architecture and the objective)
_MODEL_SECTIONS = ("model", "head")
_MODEL_KEYS = ("loss.method", "data.global_size")
_MAY_CHANGE_ON_RESUME = ("model.drop_path_rate", "model.attention")  # may change on a resume

# keys that decide the step count, the schedules or the order of the samples
SCHEDULE_KEYS: tuple[str, ...] = (
    "data.batch_size", "data.dataset", "data.split", "data.loader", "run.seed",
    "optim.epochs", "optim.lr", "optim.min_lr", "optim.warmup_epochs", "optim.weight_decay",
    "optim.weight_decay_end", "optim.momentum_teacher", "optim.schedule", "optim.freeze_last_layer_epochs",
    "loss.warmup_teacher_temp", "loss.teacher_temp", "loss.warmup_teacher_patch_temp", "loss.teacher_patch_temp",
    "loss.warmup_teacher_temp_epochs",
)
# where the run is, not what it computes: never reported as a change
_PLACE_KEYS = ("run.output_dir",)


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


def _differ(recorded: dict[str, Any], current: dict[str, Any], keys) -> list[str]:
    """Keys present in both whose values differ (keys absent from an older checkpoint are not compared)."""
    return [k for k in sorted(keys) if k in recorded and k in current and recorded[k] != current[k]]


def check_resumable(cfg: PretrainConfig, ckpt: dict[str, Any], path: str | os.PathLike) -> dict[str, tuple]:
    """Raises :class:`ConfigError` if ``ckpt`` (found at ``path``) records another model or schedule.

    Returns:
        ``{key: (recorded, now)}`` of the other keys that changed (allowed; the caller logs them).
    """
    recorded_cfg, current_cfg = _flat(ckpt.get("config") or {}), _flat(to_dict(cfg))
    recorded_model, current_model = model_keys(ckpt.get("config") or {}), model_keys(to_dict(cfg))
    model = _differ(recorded_model, current_model, recorded_model)
    schedule = _differ(recorded_cfg, current_cfg, SCHEDULE_KEYS)
    if model or schedule:
        name = (ckpt.get("model") or {}).get("name", recorded_model.get("model.name"))
        raise ConfigError(_refusal(cfg, path, name, model, schedule, recorded_cfg, current_cfg))
    refused = set(recorded_model) | set(SCHEDULE_KEYS) | set(_PLACE_KEYS)
    return {k: (recorded_cfg[k], current_cfg[k]) for k in _differ(recorded_cfg, current_cfg, recorded_cfg)
            if k not in refused}


def _refusal(cfg: PretrainConfig, path, name, model: list[str], schedule: list[str], recorded: dict,
             current: dict) -> str:
    keys = model + schedule
    listing = "; ".join(f"{k}: checkpoint {recorded[k]!r}, now {current[k]!r}" for k in keys)
    what = f"another model ({path}, architecture {name!r})" if model else f"a run with other settings ({path})"
    why = ("" if not schedule else " Resuming with other values would change the step count, the learning-rate, "
           "weight-decay and teacher schedules or the order of the samples, so the schedules would not end at "
           "their final values and samples of the interrupted epoch would be seen twice.")
    again = " ".join(f"{k}={_as_override(recorded[k])}" for k in keys)
    return (f"run.output_dir={cfg.run.output_dir} holds checkpoints of {what}: {listing}.{why} Nothing was changed "
            f"there. Resume with the recorded values ({again}), or start fresh with run.output_dir=<a new folder>")


def _as_override(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_as_override(v) for v in value) + "]"
    return "null" if value is None else str(value)


def check_same_data_size(cfg: PretrainConfig, ckpt: dict[str, Any], path: str | os.PathLike,
                         num_samples: int | None) -> None:
    """Raises :class:`ConfigError` if the data now holds another number of samples than the checkpoint's run.

    ``data.root`` may point elsewhere (a moved copy of the same data), but another size changes the
    steps per epoch and so every schedule. Checkpoints that predate the record are not compared.
    """
    recorded = ckpt.get("num_samples")
    if recorded is None or num_samples is None or int(recorded) == int(num_samples):
        return
    where = f"data.ffcv_path={cfg.data.ffcv_path}" if cfg.data.loader == "ffcv" else f"data.root={cfg.data.root}"
    raise ConfigError(
        f"run.output_dir={cfg.run.output_dir} holds checkpoints of a run over {recorded} training samples ({path}); "
        f"{where} now holds {num_samples}. Resuming would change the steps per epoch and so every schedule. Nothing "
        "was changed there. Resume with the data the run started with, or start fresh with run.output_dir=<a new "
        "folder>")


def check_writable(output_dir: str | os.PathLike) -> None:
    """Raises :class:`ConfigError` naming ``run.output_dir`` if no file can be created in it.

    Creates nothing that lasts: folders made for the test are removed again (the run creates its
    folder only once its inputs are known to be good).
    """
    out = Path(output_dir)
    made = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"run.output_dir={out} is not writable ({exc.strerror or exc}): "
                          "choose another run.output_dir") from None
    finally:
        for folder in made:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break


def check_disk_space(cfg: PretrainConfig, per_file: int) -> None:
    """Raises :class:`ConfigError` if ``run.output_dir``'s disk cannot hold the checkpoints this run keeps.

    Checked at start, before a step is spent: ``per_file`` (the estimated size of one checkpoint) times
    the files the run holds at its peak (:func:`pretrain.checkpoint.files_per_run`) plus 10%, less the
    checkpoint files already there, against the free space.
    """
    out = Path(cfg.run.output_dir)
    keep = cfg.run.keep_last
    need = space_needed(per_file, keep, held_bytes(out))
    free = free_bytes(existing_folder(out))
    if need > free:
        mb = 2**20
        raise ConfigError(
            f"run.output_dir={out}: not enough free space for this run's checkpoints: need {need / mb:.1f} MB "
            f"({files_per_run(keep)} files of about {per_file / mb:.1f} MB: run.keep_last={keep} step checkpoints, "
            f"the next one while it is written and checkpoint.pt, plus 10%), {free / mb:.1f} MB free; nothing was "
            "written. Free space, lower run.keep_last, or set run.output_dir to a larger disk")
