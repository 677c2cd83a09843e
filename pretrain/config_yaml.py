"""Reading config YAML strictly: a duplicated key or a syntax error is a one-line error, never a guess.

PyYAML's ``safe_load`` keeps only the last of two equal keys (``optim:`` twice silently drops the
first section) and reports syntax errors as a multi-line ``yaml.parser.ParserError`` about
``"<unicode string>"``. :func:`read_yaml` uses :class:`StrictLoader` (a ``SafeLoader`` that checks
each mapping's keys while constructing it) and turns both into a :class:`ConfigError` naming the
file, the key or the line and column, and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pretrain.configuration import ConfigError

__all__ = ["StrictLoader", "read_yaml", "read_yaml_value"]


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping holds the same key twice (raised while constructing it)."""

    def __init__(self, key: Any, first_line: int, second_line: int) -> None:
        super().__init__(problem=f"key {key!r} appears twice")
        self.key, self.first_line, self.second_line = key, first_line, second_line


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping holding one key twice (lines are 1-based)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: let SafeLoader report it as it does
                break
            if first is not None:
                raise DuplicateKeyError(key, first, line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, StrictLoader.construct_yaml_map)


def _load(text: str, source: str, fix: str) -> Any:
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except DuplicateKeyError as exc:
        raise ConfigError(f"{source}: key {exc.key!r} is given twice (line {exc.first_line} and line "
                          f"{exc.second_line}); YAML would keep only the last one: merge them into one") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        raise ConfigError(f"{source}: YAML syntax error{where}: {problem}"
                          + (f" ({context})" if context else "")
                          + f"; {fix}") from None


def read_yaml(path: str | Path) -> Any:
    """The contents of a YAML config file, checked for duplicate keys and syntax.

    Raises:
        ConfigError: ``config file F: key 'optim' is given twice (line 2 and line 9) ...`` or
            ``config file F: YAML syntax error at line L, column C: ...``.
    """
    path = Path(path)
    return _load(path.read_text(), f"config file {path}",
                 "fix the file there (indentation, a missing ':', an unclosed bracket or quote)")


def read_yaml_value(text: str, source: str) -> Any:
    """One ``key=value`` override's value parsed as YAML (``1e-3`` -> float, ``[1, 2]`` -> list)."""
    return _load(text, source, "fix the value (an unclosed bracket or quote?), or quote it whole: key='...'")
