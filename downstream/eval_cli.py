"""Command-line parsing shared by the evaluators: ``--config FILE key=value ...`` plus flag aliases.

The typed config machinery is :func:`pretrain.configuration.parse_args`; this adds the issue's
flag spellings (``--checkpoint F``, ``--output F`` ...) by rewriting them to ``key=value``
overrides, so every setting still goes through one validated path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from pretrain.configuration import parse_args, save_config

T = TypeVar("T")


def rewrite_aliases(argv: Sequence[str], aliases: Mapping[str, str]) -> list[str]:
    """``--flag VALUE`` / ``--flag=VALUE`` -> ``key=VALUE`` for every alias; other items unchanged.

    Raises:
        SystemExit: An alias without a value (argparse-style exit code 2).
    """
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        flag, eq, value = item.partition("=")
        if flag in aliases:
            if not eq:
                if i + 1 >= len(items):
                    raise SystemExit(f"error: {flag} needs a value (e.g. {flag} FILE)")
                value = items[i + 1]
                i += 1
            out.append(f"{aliases[flag]}={value}")
        else:
            out.append(item)
        i += 1
    return out


def parse_with_aliases(schema: type[T], argv: Sequence[str] | None, aliases: Mapping[str, str],
                       description: str = "") -> T:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into a config of ``schema``."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    # argparse re-wraps the description: keep the docstring's first line, then the aliases.
    summary = (description or "").strip().splitlines()[0] if description else ""
    text = summary + " Flag aliases: " + ", ".join(f"{f} X = {k}=X" for f, k in aliases.items()) + \
        ". See docs/evaluation.md."
    return parse_args(schema, rewrite_aliases(argv, aliases), description=text)


def save_beside(cfg: object, output: str) -> Path | None:
    """Write the resolved config next to a result file: ``knn.json`` -> ``knn.config.yaml``."""
    if not output:
        return None
    out = Path(output)
    return save_config(cfg, out.with_name(out.stem + ".config.yaml"))
