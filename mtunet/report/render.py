"""``report.md`` from a Jinja2 template and the data model (:class:`~mtunet.report.model.Report`).

The packaged template is ``templates/report.md.j2``; ``report.template`` in ``params.yaml``
names a lab's own. A missing template, a syntax error or an error while rendering (a field
that does not exist, a failing filter) raises an error naming ``report.template``, the file
and, where Jinja knows it, the line.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import jinja2
import pandas as pd

from mtunet.report.formatting import fmt, fmt_p
from mtunet.report.model import Report, ReportTable
from mtunet.report.table_files import to_markdown

PACKAGED_TEMPLATE = Path(__file__).resolve().parent / "templates" / "report.md.j2"


def template_path(template: str | None, base: Path) -> Path:
    """The template file ``report.template`` names (relative to ``base``), or the packaged one."""
    if template is None:
        return PACKAGED_TEMPLATE
    path = Path(template).expanduser()
    return path if path.is_absolute() else Path(base) / path


def _markdown(table: ReportTable | pd.DataFrame, digits: int = 2) -> str:
    """The ``markdown`` filter: a table (or a DataFrame) as a Markdown table."""
    df = table.display if isinstance(table, ReportTable) else table
    return to_markdown(df, digits=digits)


def _environment(folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.fspath(folder)),
        undefined=jinja2.StrictUndefined,  # a misspelt field fails instead of printing nothing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    env.filters.update(markdown=_markdown, fmt=fmt, fmt_p=fmt_p)
    return env


def load_template(path: Path) -> jinja2.Template:
    """Compile the template file ``path``.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: The template does not compile (the message names the line).
    """
    if not path.is_file():
        raise FileNotFoundError(f"report.template: {path}: template file not found")
    try:
        return _environment(path.parent).get_template(path.name)
    except jinja2.TemplateSyntaxError as exc:
        where = f"{exc.filename or path}, line {exc.lineno}"
        raise ValueError(f"report.template: {where}: {exc.message}") from exc
    except (jinja2.TemplateError, UnicodeDecodeError) as exc:
        raise ValueError(f"report.template: {path}: {exc}") from exc


def _template_line(tb: TracebackType | None, filename: str) -> int | None:
    """The last line of the template file in a traceback (Jinja maps frames to it)."""
    line = None
    while tb is not None:
        if os.path.normpath(tb.tb_frame.f_code.co_filename) == os.path.normpath(filename):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render(template: jinja2.Template, report: Report) -> str:
    """The report's text: the template rendered with ``report``, ending in one newline.

    Raises:
        ValueError: Rendering failed (a missing field, a failing filter or expression).
    """
    try:
        text = template.render(report=report)
    except Exception as exc:  # anything a template can raise: report it as the template's
        filename = template.filename or str(template.name)
        line = _template_line(exc.__traceback__, filename)
        where = f"{filename}, line {line}" if line else filename
        raise ValueError(f"report.template: {where}: {type(exc).__name__}: {exc}") from exc
    return text.rstrip() + "\n"
