"""The typed config machinery: dataclass defaults, YAML overrides, ``key=value`` overrides.

Defaults live in dataclasses (schemas: :mod:`pretrain.config` for pretraining, each evaluator's
``cli.py``); a YAML file in ``configs/`` holds only the keys it changes; the command line adds
``key=value`` pairs (dotted keys, e.g. ``optim.lr=1e-3``). Unknown keys are an error naming the
key and the closest valid ones; a value of the wrong type is an error naming the key, the value
and the expected type; a :func:`choice` field outside its values names the valid ones and the
closest; cross-field rules registered with :func:`register_check` run last. :func:`save_config`
writes the resolved config next to a run.

Entry points use :func:`parse_args` (``--config FILE key=value ...``, ``--help-config``); library
code receives plain typed values, never these objects.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from collections.abc import Callable, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, with a message that says what to change."""


def choice(default: str, *others: str) -> Any:
    """A string field that only takes ``default`` or one of ``others`` (checked at parse time).

    OmegaConf cannot type a field as ``Literal``; the valid values live in the field's metadata
    and :func:`load_config` checks every such field before anything else runs.
    """
    return field(default=default, metadata={"choices": (default, *others)})


_CHECKS: dict[type, Callable[[Any], None]] = {}


def register_check(schema: type, check: Callable[[Any], None]) -> None:
    """Runs ``check(cfg)`` (raising :class:`ConfigError`) whenever a ``schema`` config is loaded."""
    _CHECKS[schema] = check


def choices_of(schema: Any, prefix: str = "") -> dict[str, tuple[str, ...]]:
    """``{dotted key: valid values}`` of every :func:`choice` field of a dataclass type."""
    out: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(schema):
        if "choices" in f.metadata:
            out[f"{prefix}{f.name}"] = f.metadata["choices"]
        elif f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory()):
            out.update(choices_of(type(f.default_factory()), f"{prefix}{f.name}."))
    return out


def _check_choices(schema: Any, cfg: Any) -> None:
    for key, valid in choices_of(schema).items():
        value = OmegaConf.select(cfg, key)
        if value not in valid:
            close = difflib.get_close_matches(str(value), valid, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{key}={value!r} is not a valid value: {hint}choose one of {', '.join(valid)}")


def _valid_keys(schema: Any, prefix: str = "") -> list[str]:
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


def _section_keys(schema: Any, prefix: str = "") -> list[str]:
    """Dotted keys of the sections (nested dataclasses) of a dataclass type."""
    out = []
    for f in dataclasses.fields(schema):
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(value):
            out.append(f"{prefix}{f.name}")
            out.extend(_section_keys(type(value), f"{prefix}{f.name}."))
    return out


def _check_sections(schema: Any, data: Any, source: str) -> None:
    """A section (``model``, ``optim`` ...) given a scalar or a list is an error naming the section."""
    for key in _section_keys(schema):
        value: Any = data
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and not isinstance(value, dict):
            example = _valid_keys(schema)[_valid_keys(schema).index(key) + 1].rsplit(".", 1)[1]
            raise ConfigError(f"{key!r} in {source} is a section: it must be a mapping of its keys (e.g. "
                              f"'{key}.{example}=...', or '{key}:' with '  {example}: ...' below it in YAML), "
                              f"not {value!r}")


def _flatten(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict):
        return [prefix[:-1]]
    out: list[str] = []
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


def load_config(schema: type[T], config_path: str | None = None, overrides: Sequence[str] = ()) -> T:
    """Builds a config: dataclass defaults <- YAML file <- ``key=value`` overrides.

    Args:
        schema: The dataclass type, e.g. :class:`PretrainConfig`.
        config_path: Optional YAML file holding overrides only.
        overrides: ``dotted.key=value`` strings (values parsed as YAML).

    Returns:
        A typed, read-only config object (attribute access, validated types).

    Raises:
        ConfigError: Missing file, unknown key (with suggestions), wrong value type, a value
            outside a field's choices (naming the valid ones), or a failed cross-field check.
    """
    from pretrain.config_yaml import read_yaml, read_yaml_value  # it imports ConfigError from here

    cfg = OmegaConf.structured(schema)
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (pass a YAML file from configs/)")
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
        data = {k: v for k, v in data.items() if k != "defaults"}
        _check_keys(schema, _flatten(data), str(path))
        _check_sections(schema, data, f"config file {path}")
        cfg = _merge(cfg, data, str(path))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. optim.lr=1e-3)")
        key, raw = item.split("=", 1)
        _check_keys(schema, [key.strip()], "command-line overrides")
        value = read_yaml_value(raw, f"override {item!r}") if raw != "" else ""
        nested: Any = value
        for part in reversed(key.strip().split(".")):
            nested = {part: nested}
        _check_sections(schema, nested, f"override {item!r}")
        cfg = _merge(cfg, nested, f"override {item!r}")
    _check_choices(schema, cfg)
    if schema in _CHECKS:
        _CHECKS[schema](cfg)
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


def describe_keys(schema: Any) -> str:
    """Every config key with its default (and valid values), one per line, for ``--help-config``."""
    defaults = OmegaConf.structured(schema)
    valid = choices_of(schema)
    lines = []
    for key in _valid_keys(schema):
        value = OmegaConf.select(defaults, key)
        if isinstance(value, DictConfig):
            continue
        value = OmegaConf.to_container(value) if not isinstance(value, (str, int, float, bool, type(None))) else value
        extra = f"  (one of: {', '.join(valid[key])})" if key in valid else ""
        lines.append(f"{key}={value!r}{extra}")
    return "\n".join(lines)


def parse_args(schema: type[T], argv: Sequence[str] | None = None, description: str = "") -> T:
    """Parses ``--config FILE key=value ...`` into a config of ``schema`` (``--help-config`` lists keys)."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Any config key can be set as key=value; run with --help-config to list every key, "
               "its default and its valid values.")
    parser.add_argument("--config", help="YAML file with overrides (see configs/)")
    parser.add_argument("--help-config", action="store_true", help="print every config key and exit")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. optim.lr=1e-3")
    args = parser.parse_args(argv)
    if args.help_config:
        print(describe_keys(schema))
        parser.exit(0)
    try:
        return load_config(schema, args.config, args.overrides)
    except ConfigError as exc:
        parser.exit(2, f"config error: {exc}\n")
