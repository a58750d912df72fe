"""Tables as text: formatted cells, Markdown (``DataFrame.to_markdown``), LaTeX, CSV files.

Every table is written twice: the numbers at full precision to ``<stem>.csv`` and the
formatted cells to ``<stem>.tex`` (booktabs); the report shows the same cells as Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import DataRow, TableFormat

from mtunet.fileio import atomic_path, write_text
from mtunet.report.formatting import fmt

_ROW = DataRow("| ", " | ", " |")
# GitHub-flavoured Markdown without padding: ``| a | b |`` rows under a ``|---|---|`` rule,
# so a changed cell changes one line of the report and nothing else.
MARKDOWN_FORMAT = TableFormat(
    lineabove=None,
    linebelowheader=lambda widths, aligns: "|" + "---|" * len(widths),
    linebetweenrows=None,
    linebelow=None,
    headerrow=_ROW,
    datarow=_ROW,
    padding=0,
    with_header_hide=None,
)


def _isna(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _cells(df: pd.DataFrame, digits: int, signed_cols: Sequence[str]) -> list[list[str]]:
    """Each row's cells as text (:func:`fmt`; missing and NaN as ``-``)."""
    return [
        [fmt(None if _isna(v) else v, digits, signed=str(c) in signed_cols) for c, v in row.items()]
        for _, row in df.iterrows()
    ]


def display_cells(
    df: pd.DataFrame,
    headers: Sequence[str] | None = None,
    digits: int = 2,
    signed_cols: Sequence[str] = (),
) -> pd.DataFrame:
    """The cells a reader sees, as strings, under ``headers`` (``df``'s columns when None).

    Args:
        df: Numbers (``digits`` decimals, a sign in ``signed_cols``) and text.
        headers: Column headers, one per column (may repeat, e.g. ``Δ DSC`` per dataset).
        digits: Decimals of the numbers.
        signed_cols: Columns of ``df`` printed with a sign.
    """
    heads = [str(h) for h in (headers or df.columns)]
    return pd.DataFrame(_cells(df, digits, signed_cols), columns=heads, dtype=object)


def to_markdown(
    df: pd.DataFrame,
    headers: Sequence[str] | None = None,
    digits: int = 2,
    signed_cols: Sequence[str] = (),
) -> str:
    """A GitHub-flavoured Markdown table (``DataFrame.to_markdown``; no final newline).

    Cells are formatted as in :func:`display_cells`; ``|`` in a cell or header is escaped.
    """
    shown = display_cells(df, headers, digits, signed_cols)
    escaped = pd.DataFrame(
        [[c.replace("|", "\\|") for c in row] for row in shown.itertuples(index=False)],
        dtype=object,
    )
    return escaped.to_markdown(
        index=False,
        headers=[str(h).replace("|", "\\|") for h in shown.columns],
        tablefmt=MARKDOWN_FORMAT,
        stralign=None,
        numalign=None,
        disable_numparse=True,
    )


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "Δ": r"$\Delta$",
    "τ": r"$\tau$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(
    df: pd.DataFrame,
    caption: str,
    label: str,
    headers: Sequence[str] | None = None,
    digits: int = 2,
    signed_cols: Sequence[str] = (),
) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    heads = [latex_escape(str(h)) for h in (headers or df.columns)]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    spec = "".join("r" if n else "l" for n in numeric)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(heads) + r" \\",
        r"\midrule",
    ]
    for cells in _cells(df, digits, signed_cols):
        lines.append(" & ".join(latex_escape(c) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame,
    out_dir: Path,
    stem: str,
    caption: str,
    digits: int = 2,
    signed_cols: Sequence[str] = (),
    display: pd.DataFrame | None = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (``df``, full precision) and ``<stem>.tex`` under ``out_dir``.

    Args:
        df: The table's numbers; written to the CSV file as they are.
        out_dir: Output folder.
        stem: File name without suffix; the LaTeX label is ``tab:<stem>``.
        caption: LaTeX caption.
        digits: Decimals of the numbers in the LaTeX table.
        signed_cols: Columns printed with a sign in the LaTeX table.
        display: Formatted cells for the LaTeX table (its columns are the headers); ``df``
            itself when None.

    Returns:
        The CSV and LaTeX paths.
    """
    csv_path = Path(out_dir) / f"{stem}.csv"
    tex_path = Path(out_dir) / f"{stem}.tex"
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    shown = df if display is None else display
    write_text(
        tex_path, to_latex(shown, caption, f"tab:{stem}", digits=digits, signed_cols=signed_cols)
    )
    return csv_path, tex_path
