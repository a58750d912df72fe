"""Formatting shared by the tables the docs render from result files (``docs/hooks/``).

Imported by the table modules beside it; MkDocs puts this folder on ``sys.path`` while it
loads the hook ``tables.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The minus sign of signed differences, as the README printed them.
MINUS = "\u2212"

Doc = Mapping[str, Any]


class TableError(ValueError):
    """A marker that cannot be rendered: unknown name, missing file, missing field."""


@dataclass(frozen=True)
class Table:
    """One table a marker can name.

    Attributes:
        files: JSON files it reads, relative to the repository root, in the order
            ``render`` takes them.
        render: Builds the Markdown table from the loaded files.
    """

    files: tuple[str, ...]
    render: Callable[..., str]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (what MkDocs' ``tables`` extension reads)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise TableError(f"row {list(row)} has {len(row)} cells, header has {len(header)}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``-`` where the file has no value."""
    return "-" if value is None else format(value, spec)


def signed(value: float, spec: str = ".2f") -> str:
    """A difference with its sign, ``+`` or a true minus."""
    return format(value, "+" + spec).replace("-", MINUS)


def ratio(value: float) -> str:
    """A speed ratio: ``1.13x``."""
    return f"{value:.2f}x"


def yes_no(flag: bool) -> str:
    """``yes`` or ``no``."""
    return "yes" if flag else "no"


def rank(value: str, order: Sequence[str]) -> int:
    """Position of ``value`` in ``order``; unknown values sort last."""
    return order.index(value) if value in order else len(order)


def sha(digest: str) -> str:
    """The first 16 hex digits of a SHA-256, as code."""
    return f"`{digest[:16]}…`"
