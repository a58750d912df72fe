"""MkDocs hook: tables rendered from the result files, and the figures under ``reports/``.

A page writes ``<!-- table: NAME -->`` on a line of its own where a table belongs. At build
time the marker is replaced by a Markdown table rendered from the JSON files that
``TABLES[NAME]`` reads (paths relative to the repository root; the renderers are in
``speed_tables.py`` and ``result_tables.py`` beside this file), so rerunning a benchmark or
the study updates the docs instead of leaving stale prose. An unknown NAME, a missing file or a missing field stops the
build with an error naming it.

Pages link figures as ``../reports/...``, which is right where the Markdown is read in the
repository (``docs/`` beside ``reports/``). MkDocs serves only ``docs/``, so the hook adds the
images under ``reports/`` to the site as ``reports/...`` and rewrites those links to match.

Registered in ``mkdocs.yml`` under ``hooks:``; ``tests/test_docs.py`` tests the rendering.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import result_tables as results
import speed_tables as speed
from table_format import Doc, Table, TableError

#: ``<!-- table: NAME -->`` alone on its line, NAME made of letters, digits, ``_``, ``-``, ``.``
#: (alone, so that a page can quote a marker in running text or code).
MARKER = re.compile(r"^[ \t]*<!--[ \t]*table:[ \t]*([A-Za-z0-9_.-]+)[ \t]*-->[ \t]*$", re.MULTILINE)
#: Image types under ``reports/`` that the site serves.
FIGURE_SUFFIXES = (".png", ".svg", ".jpg")


# ---------------------------------------------------------------------------------------------
# The tables markers can name

RESULTS = "benchmarks/results"


def _result(name: str, render: Callable[..., str]) -> Table:
    """A table of one file, ``benchmarks/results/<name>.json``."""
    return Table((f"{RESULTS}/{name}.json",), render)


TABLES: dict[str, Table] = {
    "model_speed_cpu": _result("model_speed_cpu", speed.model_speed_cpu),
    "model_speed_cpu_forward_rerun": _result(
        "model_speed_cpu_forward_rerun", speed.model_speed_cpu
    ),
    "model_speed_cuda": _result("model_speed_cuda", speed.model_speed_cuda),
    "train_speed_cpu": _result("train_speed_cpu", speed.train_speed_cpu),
    "train_speed_cuda": _result("train_speed_cuda", speed.train_speed_cuda),
    "train_speed_cuda_eager_rerun": _result("train_speed_cuda_eager_rerun", speed.train_speed_cuda),
    "train_speed_vs_commit": Table(
        (
            f"{RESULTS}/train_speed_vs_commit_cpu.json",
            f"{RESULTS}/train_speed_vs_commit_cpu_64.json",
        ),
        speed.train_speed_vs_commit,
    ),
    "train_step_breakdown": Table(
        (
            f"{RESULTS}/train_step_breakdown_cpu_portable.json",
            f"{RESULTS}/train_step_breakdown_cpu_native.json",
        ),
        speed.train_step_breakdown,
    ),
    "train_loop_speed_cpu": _result("train_loop_speed_cpu", speed.train_loop_speed),
    "train_loop_speed_compile_cpu": _result("train_loop_speed_compile_cpu", speed.train_loop_speed),
    "train_loop_speed_threads_cpu": _result(
        "train_loop_speed_threads_cpu", speed.train_loop_threads
    ),
    "loader_speed": _result("loader_speed", speed.loader_speed),
    "study_time": _result("study_time", speed.study_time),
    "study_time_intel_xeon": _result("study_time_intel_xeon", speed.study_time),
    "dvc_overhead": _result("dvc_overhead", speed.dvc_overhead),
    "dvc_overhead_locks": _result("dvc_overhead", speed.dvc_overhead_locks),
    "loader_workers": _result("loader_speed", speed.loader_workers),
    "cpu_reproducibility": _result("cpu_reproducibility", results.cpu_reproducibility),
    "cpu_reproducibility_trace": _result("cpu_reproducibility", results.cpu_reproducibility_trace),
    "cpu_reproducibility_cost": _result("cpu_reproducibility", results.cpu_reproducibility_cost),
    "rerun_spread": _result("rerun_spread", results.rerun_spread),
    "rerun_spread_verdicts": _result("rerun_spread", results.rerun_spread_verdicts),
    "metrics_speed": _result("metrics_speed", results.metrics_speed),
    "preprocess_speed": _result("preprocess_speed", results.preprocess_speed),
    "phantom_difficulty_synapse": _result("phantom_difficulty_synapse", results.phantom_difficulty),
    "phantom_difficulty_acdc": _result("phantom_difficulty_acdc", results.phantom_difficulty),
    # Written by the compare stage of the committed ablation study.
    "ray_cancel": Table(
        (f"{RESULTS}/ray_cancel.json", f"{RESULTS}/ray_cancel_sigint_ignored.json"),
        results.ray_cancel,
    ),
    "ablation_cpu": Table(
        ("reports/ablation_cpu/comparison_synapse.json",), results.ablation_study
    ),
}


# ---------------------------------------------------------------------------------------------
# Rendering


def _load(root: Path, name: str, relative: str) -> Doc:
    path = root / relative
    if not path.is_file():
        raise TableError(f"table {name!r}: result file {relative} not found (under {root})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TableError(f"table {name!r}: {relative} is not valid JSON: {exc}") from exc


def render_table(name: str, root: Path, tables: Mapping[str, Table] = TABLES) -> str:
    """The Markdown table a marker names.

    Args:
        name: The marker's name, a key of ``tables``.
        root: The repository root the table's files are relative to.
        tables: The tables markers can name.

    Returns:
        The table, header and separator lines first.

    Raises:
        TableError: ``name`` is unknown, a file is missing or unreadable, or lacks a field
            the table needs (each named in the message).
    """
    if name not in tables:
        raise TableError(f"unknown table marker {name!r}; known: {', '.join(sorted(tables))}")
    table = tables[name]
    docs = [_load(root, name, relative) for relative in table.files]
    try:
        return table.render(*docs)
    except (KeyError, TypeError, IndexError) as exc:
        files = ", ".join(table.files)
        raise TableError(f"table {name!r}: {files} lack a field it needs: {exc!r}") from exc


def replace_markers(markdown: str, root: Path, tables: Mapping[str, Table] = TABLES) -> str:
    """``markdown`` with every table marker replaced by its rendered table."""
    return MARKER.sub(lambda m: render_table(m.group(1), root, tables), markdown)


def rewrite_figure_links(markdown: str, src_uri: str) -> str:
    """Links to ``reports/`` written relative to the page's place in the repository
    (``docs/<src_uri>``) turned into links to the copies the site serves."""
    depth = src_uri.count("/")
    in_repo = "../" * (depth + 1) + "reports/"
    in_site = "../" * depth + "reports/"
    return markdown.replace(f"]({in_repo}", f"]({in_site}")


# ---------------------------------------------------------------------------------------------
# MkDocs events


def _root(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_files(files: Any, config: Any) -> Any:
    """Add the images under ``reports/`` to the site, at ``reports/...``."""
    from mkdocs.structure.files import File

    root = _root(config)
    for path in sorted((root / "reports").rglob("*")):
        if path.suffix in FIGURE_SUFFIXES and path.is_file():
            src_uri = path.relative_to(root).as_posix()
            files.append(File.generated(config, src_uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **_: Any) -> str:
    """Render the page's table markers and point its figure links at the site's copies."""
    from mkdocs.exceptions import PluginError

    try:
        markdown = replace_markers(markdown, _root(config))
    except TableError as exc:
        raise PluginError(f"docs/{page.file.src_uri}: {exc}") from exc
    return rewrite_figure_links(markdown, page.file.src_uri)
