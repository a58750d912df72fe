"""The report's template: the packaged one ships with the package; ``report.template`` names a
lab's own; a missing or broken template fails with the parameter, the file and the line."""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fake_study import build

from mtunet.config import load_params
from mtunet.report.config import ReportConfig
from mtunet.report.model import Report, ReportTable
from mtunet.report.render import PACKAGED_TEMPLATE, load_template, render, template_path
from mtunet.report.table_files import display_cells, to_markdown

REPO = Path(__file__).resolve().parents[2]


def _package_data_globs() -> list[str]:
    """``[tool.setuptools.package-data]``'s globs for ``mtunet.report`` in pyproject.toml."""
    text = (REPO / "pyproject.toml").read_text()
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)["tool"]["setuptools"]["package-data"]["mtunet.report"]
    section = text.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    line = next(x for x in section.splitlines() if x.startswith('"mtunet.report"'))
    return yaml.safe_load(line.split("=", 1)[1])


def test_packaged_template_is_package_data() -> None:
    """A non-editable install gets every template file (setuptools' package data)."""
    assert PACKAGED_TEMPLATE.is_file()
    templates = sorted(PACKAGED_TEMPLATE.parent.iterdir())
    assert templates == [PACKAGED_TEMPLATE]
    package = REPO / "mtunet" / "report"
    for path in templates:
        rel = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in _package_data_globs()), rel


def test_template_path_is_relative_to_the_params_folder(tmp_path: Path) -> None:
    assert template_path(None, tmp_path) == PACKAGED_TEMPLATE
    assert template_path("lab/report.md.j2", tmp_path) == tmp_path / "lab" / "report.md.j2"
    absolute = tmp_path / "abs.md.j2"
    assert template_path(str(absolute), Path("elsewhere")) == absolute


def _report(notes: tuple[str, ...] = ()) -> Report:
    """A report without datasets: enough for the template machinery."""
    df = pd.DataFrame({"experiment": ["workspace (this run)"], "x": [1.5]})
    table = ReportTable("experiments", "cap", df, display_cells(df, ["Experiment", "X | Y"]))
    return Report("T", (), table, 0, notes)


def test_render_with_filters(tmp_path: Path) -> None:
    path = tmp_path / "t.md.j2"
    path.write_text(
        "# {{ report.title }}\n\n{% if report.notes %}\nnotes\n{% endif %}\n"
        "{{ report.experiments | markdown }}\n\n"
        "{{ 0.123456 | fmt(3) }} {{ none | fmt }} {{ 0.0004 | fmt_p }}\n\n\n"
    )
    text = render(load_template(path), _report())
    # The line after a lone tag disappears; the end is one newline; `|` is escaped.
    assert text == (
        "# T\n\n| Experiment | X \\| Y |\n|---|---|\n| workspace (this run) | 1.50 |\n\n"
        "0.123 - <0.001\n"
    )


def test_markdown_tables() -> None:
    df = pd.DataFrame(
        [["a", 1.0, -0.5], ["b", float("nan"), 2.0]], columns=["name", "dsc", "dsc_delta"]
    )
    md = to_markdown(df, ["Name", "Δ", "Δ"], signed_cols=["dsc_delta"])
    assert md == "| Name | Δ | Δ |\n|---|---|---|\n| a | 1.00 | -0.50 |\n| b | - | +2.00 |"
    assert to_markdown(df.iloc[:0]) == "| name | dsc | dsc_delta |\n|---|---|---|"


def test_missing_template_names_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"report\.template: .*none\.md\.j2: template file not found"
    ):
        load_template(tmp_path / "none.md.j2")


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.md.j2"
    path.write_text("# {{ report.title }}\n\n{% if report.notes %}\nnever closed\n")
    with pytest.raises(ValueError, match=r"report\.template: .*bad\.md\.j2, line \d+: .*endif"):
        load_template(path)


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("{{ report.titel }}", "has no attribute 'titel'"),  # a misspelt field
        ("{{ 1.5 | fmt('x') }}", "ValueError"),  # a failing filter
    ],
)
def test_render_error_names_the_file_and_line(tmp_path: Path, body: str, found: str) -> None:
    path = tmp_path / "bad.md.j2"
    path.write_text(f"# {{{{ report.title }}}}\n\n{body}\n")
    template = load_template(path)
    with pytest.raises(ValueError, match=r"report\.template: .*bad\.md\.j2, line 3: ") as err:
        render(template, _report())
    assert found in str(err.value)


@pytest.mark.parametrize(
    "path",
    ["params.yaml", "configs/paper.yaml", "configs/release.yaml", "configs/ablation_cpu.yaml"],
)
def test_shipped_configurations_use_the_packaged_template(path: str) -> None:
    cfg = ReportConfig.from_dict(load_params(REPO / path)["report"])
    assert cfg.template is None


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "report.template: must be a template file or null"), (3, "report.template: expected")],
)
def test_bad_template_param(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ReportConfig.from_dict({"template": value})


def _set_template(root: Path, value: str) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["report"]["template"] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_a_broken_template_fails_before_anything_is_drawn(repo: dict[str, Any]) -> None:
    root = repo["root"]
    _set_template(root, "lab/report.md.j2")
    with pytest.raises(FileNotFoundError, match=r"report\.template: .*lab/report\.md\.j2"):
        build(root)
    (root / "lab").mkdir()
    (root / "lab" / "report.md.j2").write_text("{% for ds in report.datasets %}\n")
    with pytest.raises(ValueError, match=r"report\.template: .*lab/report\.md\.j2, line"):
        build(root)
    assert not (root / "reports").exists()


@pytest.mark.slow
def test_a_lab_template_changes_the_report(repo: dict[str, Any]) -> None:
    """The docs' example: a copy of the packaged template with a heading renamed and the size
    columns dropped from the models table."""
    root = repo["root"]
    packaged = build(root).read_text()
    original = PACKAGED_TEMPLATE.read_text()
    models = "{{ table(ds.tables.models) }}"
    assert original.count(models) == 1 and original.count("### Models\n") == 1
    edited = original.replace("### Models\n", "### Networks compared\n").replace(
        models,
        '{{ ds.tables.models.display.drop(columns=["Params (M)", "GFLOPs"]) | markdown }}',
    )
    (root / "lab").mkdir()
    (root / "lab" / "report.md.j2").write_text(edited)
    _set_template(root, "lab/report.md.j2")
    text = build(root).read_text()
    assert "### Networks compared" in text and "### Models" not in text
    assert "| Model | DSC (%) | HD95 (vox) | aorta |" in text
    assert "| Model | Params (M) | GFLOPs |" in packaged and "GFLOPs |" not in text
    assert "_Synapse multi-organ CT, synthetic phantoms: the study's models" not in text

    # Each dataset's sections after the models table are the packaged report's.
    def rest(t: str) -> list[str]:
        return re.findall(r"### Differences to the reference.*?(?=\n## )", t, re.S)

    assert len(rest(text)) == 2 and rest(text) == rest(packaged)
