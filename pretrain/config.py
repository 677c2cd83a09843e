"""Typed run configuration: dataclass defaults, YAML overrides, ``key=value`` overrides.

Defaults live in the dataclasses below; a YAML file in ``configs/`` holds only the keys it
changes; the command line adds ``key=value`` pairs (dotted keys, e.g. ``optim.lr=1e-3``).
Unknown keys are an error naming the key and the closest valid ones; a value of the wrong type
is an error naming the key, the value and the expected type. :func:`save_config` writes the
resolved config next to a run.

Entry points use :func:`parse_args` (``--config FILE key=value ...``); library code receives
plain typed values, never these objects.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, with a message that says what to change."""


# ----------------------------------------------------------------------------- pretraining


@dataclass
class ModelConfig:
    name: str = "vit_small"
    patch_size: int = 16
    embed_dim: int = 0  # 0: the registry entry's value (likewise depth, num_heads)
    depth: int = 0
    num_heads: int = 0
    pooling: str = "cls"  # cls | gap | simpool
    pos_embed: str = "learned"  # learned | sincos
    key_variant: str = "standard"  # standard | spatialk | kua | simplek | vanillak
    num_charts: int = 4
    num_registers: int = 0
    drop_path_rate: float = 0.1
    simpool_gamma: Optional[float] = None


@dataclass
class HeadConfig:
    out_dim: int = 8192
    patch_out_dim: int = 8192
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    nlayers: int = 3
    norm_last_layer: bool = True
    shared_head: bool = True  # iBOT: one head for [CLS] and patch tokens


@dataclass
class LossConfig:
    method: str = "ibot"  # ibot | dino
    student_temp: float = 0.1
    warmup_teacher_temp: float = 0.04
    teacher_temp: float = 0.07
    warmup_teacher_temp_epochs: int = 30
    center_momentum: float = 0.9
    lambda_cls: float = 1.0
    lambda_patch: float = 1.0


@dataclass
class MaskConfig:
    strategy: str = "attmask_high"  # none | random | block | attmask_high | attmask_hint | attmask_low
    prob: float = 0.5
    ratio_min: float = 0.1
    ratio_max: float = 0.5
    show_max: float = 0.1


@dataclass
class DataConfig:
    dataset: str = "imagefolder"  # imagefolder | fashion_mnist
    root: str = "data/imagenet/train"
    loader: str = "torchvision"  # torchvision | ffcv
    ffcv_path: str = ""
    batch_size: int = 64  # per process
    num_workers: int = 8
    global_size: int = 224
    local_size: int = 96
    n_local: int = 10
    global_scale: List[float] = field(default_factory=lambda: [0.25, 1.0])
    local_scale: List[float] = field(default_factory=lambda: [0.05, 0.25])


@dataclass
class OptimConfig:
    epochs: int = 100
    lr: float = 5e-4  # for a total batch of 256; scaled linearly
    min_lr: float = 1e-6
    warmup_epochs: int = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    momentum_teacher: float = 0.996
    clip_grad: float = 3.0
    freeze_last_layer_epochs: int = 1


@dataclass
class KnnMonitorConfig:
    every_epochs: int = 0  # 0 disables the online k-NN check
    dataset: str = "fashion_mnist"
    root: str = ""
    train_split: str = "train"
    test_split: str = "test"
    max_train: int = 10000
    max_test: int = 2000
    image_size: int = 224
    k: int = 20
    temperature: float = 0.07


@dataclass
class RunConfig:
    output_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto | bf16 | fp16 | none  (auto: bf16 on CUDA, none on CPU)
    compile: bool = False
    deterministic: bool = False
    max_steps: int = 0  # > 0 stops early (tests, demos); schedules still span all epochs
    ckpt_every_steps: int = 500
    keep_last: int = 3
    log_every_steps: int = 20
    image_every_steps: int = 500
    max_nonfinite_steps: int = 10
    progress: bool = True


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    knn: KnnMonitorConfig = field(default_factory=KnnMonitorConfig)
    run: RunConfig = field(default_factory=RunConfig)


# ----------------------------------------------------------------------------- machinery


def _valid_keys(schema: Any, prefix: str = "") -> List[str]:
    """All dotted leaf and section keys of a dataclass type."""
    keys = []
    for f in dataclasses.fields(schema):
        full = f"{prefix}{f.name}"
        keys.append(full)
        ftype = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(ftype):
            keys.extend(_valid_keys(type(ftype), full + "."))
    return keys


def _check_keys(schema: Any, keys: Sequence[str], source: str) -> None:
    valid = _valid_keys(schema)
    for key in keys:
        if key in valid:
            continue
        close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
        section = key.rsplit(".", 1)[0] + "." if "." in key else ""
        if section and section[:-1] not in valid:
            section = ""  # the section itself is wrong: list the sections
        siblings = [v for v in valid if v.startswith(section) and "." not in v[len(section):]]
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise ConfigError(
            f"unknown config key {key!r} in {source}: {hint}"
            f"valid keys here: {', '.join(siblings) or ', '.join(valid)}"
        )


def _flatten(data: Any, prefix: str = "") -> List[str]:
    if not isinstance(data, dict):
        return [prefix[:-1]]
    out: List[str] = []
    for k, v in data.items():
        out.extend(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"])
    return out


def _merge(base: DictConfig, data: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, data)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        reason = str(exc.msg).splitlines()[0]
        raise ConfigError(f"bad value for config key {key!r} in {source}: {reason}") from None


def load_config(
    schema: type[T], config_path: Optional[str] = None, overrides: Sequence[str] = ()
) -> T:
    """Builds a config: dataclass defaults <- YAML file <- ``key=value`` overrides.

    Args:
        schema: The dataclass type, e.g. :class:`PretrainConfig`.
        config_path: Optional YAML file holding overrides only.
        overrides: ``dotted.key=value`` strings (values parsed as YAML).

    Returns:
        A typed, read-only config object (attribute access, validated types).

    Raises:
        ConfigError: Missing file, unknown key (with suggestions), wrong value type.
    """
    cfg = OmegaConf.structured(schema)
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (pass a YAML file from configs/)")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
        data = {k: v for k, v in data.items() if k != "defaults"}
        _check_keys(schema, _flatten(data), str(path))
        cfg = _merge(cfg, data, str(path))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. optim.lr=1e-3)")
        key, raw = item.split("=", 1)
        _check_keys(schema, [key.strip()], "command-line overrides")
        value = yaml.safe_load(raw) if raw != "" else ""
        nested: Any = value
        for part in reversed(key.strip().split(".")):
            nested = {part: nested}
        cfg = _merge(cfg, nested, f"override {item!r}")
    OmegaConf.set_readonly(cfg, True)
    return cfg  # type: ignore[return-value]


def to_dict(cfg: Any) -> dict:
    """The resolved config as a plain dict (safe to pickle and to put in checkpoints)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def save_config(cfg: Any, path: str | Path) -> Path:
    """Writes the resolved config as YAML (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def parse_args(
    schema: type[T], argv: Optional[Sequence[str]] = None, description: str = ""
) -> T:
    """Parses ``--config FILE key=value ...`` into a config of ``schema``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="YAML file with overrides (see configs/)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. optim.lr=1e-3")
    args = parser.parse_args(argv)
    try:
        return load_config(schema, args.config, args.overrides)
    except ConfigError as exc:
        parser.exit(2, f"config error: {exc}\n")
