"""The documentation: the MkDocs hook that renders tables from result files, and the pages."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def _load_hook() -> ModuleType:
    """Load ``docs/hooks/tables.py`` as MkDocs does: from its path, with its folder on
    ``sys.path`` while it runs (so it imports the table modules beside it)."""
    name = "mtunet_docs_tables_hook"
    path = DOCS / "hooks" / "tables.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    old_path = sys.path.copy()
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = old_path
    return module


hook = _load_hook()
table_format = sys.modules["table_format"]  # imported by the hook, from beside it


def _write(root: Path, relative: str, data: dict) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


METRICS_SPEED = {
    "machine": {"medpy": "0.5.2"},
    "runs": {
        "medpy": {"peak_mem_mb": 2134.68, "seconds": 115.978},
        "mtunet": {"peak_mem_mb": 106.957, "seconds": 1.1639},
    },
}


def test_marker_renders_the_rows_of_its_json(tmp_path: Path) -> None:
    _write(tmp_path, "benchmarks/results/metrics_speed.json", METRICS_SPEED)
    page = "Before.\n\n<!-- table: metrics_speed -->\n\nAfter.\n"
    out = hook.replace_markers(page, tmp_path)
    assert out == (
        "Before.\n\n"
        "| implementation | seconds | peak memory (MB) |\n"
        "|---|---|---|\n"
        "| medpy 0.5.2 (`dc`, `hd95`) | 115.98 | 2135 |\n"
        "| mtunet.metrics (voxels) | 1.16 | 107 |\n"
        "\nAfter.\n"
    )


def test_a_table_joins_its_files_by_row(tmp_path: Path) -> None:
    """train_speed_vs_commit: one column pair per file; a variant one file lacks shows ``-``."""

    def run(size: int, rows: list[tuple[str, float, float]]) -> dict:
        return {
            "settings": {"baseline_commit": "55a7fd2" + "0" * 33, "img_size": size},
            "rows": [
                {"variant": v, "train_images_per_s": ips, "speedup_vs_baseline": s}
                for v, ips, s in rows
            ],
        }

    results = "benchmarks/results"
    _write(
        tmp_path,
        f"{results}/train_speed_vs_commit_cpu.json",
        run(96, [("baseline", 24.946, 1.0), ("current_native", 30.083, 1.2059)]),
    )
    _write(
        tmp_path, f"{results}/train_speed_vs_commit_cpu_64.json", run(64, [("baseline", 49.7, 1.0)])
    )
    lines = hook.render_table("train_speed_vs_commit", tmp_path).splitlines()
    assert lines[0] == "| variant | 96 × 96 img/s | vs 55a7fd2 | 64 × 64 img/s | vs 55a7fd2 |"
    assert lines[2].startswith("| commit 55a7fd2 (")
    assert lines[2].endswith(" | 24.95 | 1.00x | 49.70 | 1.00x |")
    assert lines[3] == "| the same on native (AVX-512) kernels | 30.08 | 1.21x | - | - |"
    assert len(lines) == 4


def test_rerun_spread_tables_show_each_rerun_beside_the_committed_study(tmp_path: Path) -> None:
    """benchmarks/rerun_spread.py's file: moves of every mean, and each rerun's verdict."""
    moved = {"dsc": {"move": -1.5}, "hd95": {"move": 0.25}}
    same = {"same": True, "rerun": "lower", "diff_rerun": -6.0}
    changed = {"same": False, "rerun": "none", "diff_rerun": -0.5}
    doc = {
        "committed": {
            "acdc": {
                "variants": {"mtunet": {"dsc": 82.0, "hd95": 1.25}},
                "comparisons": {"models/dsc/unet": {"verdict": "lower", "diff": -5.0}},
            }
        },
        "largest_move": {"acdc": {"mtunet": {"dsc": 2.0, "hd95": 0.25}}},
        "reruns": {
            "1 thread": {
                "results": {
                    "acdc": {
                        "variants": {"mtunet": moved},
                        "comparisons": {"models/dsc/unet": same},
                    }
                }
            },
            "other vendor": {
                "results": {
                    "acdc": {
                        "variants": {"mtunet": {"dsc": {"move": 2.0}, "hd95": {"move": 0.0}}},
                        "comparisons": {"models/dsc/unet": changed},
                    }
                }
            },
        },
    }
    _write(tmp_path, "benchmarks/results/rerun_spread.json", doc)
    moves = hook.render_table("rerun_spread", tmp_path).splitlines()
    assert (
        moves[0]
        == "| dataset | model | metric | committed | 1 thread | other vendor | largest move |"
    )
    assert moves[2] == "| acdc | mtunet | DSC (%) | 82.00 | \u22121.50 | +2.00 | 2.00 |"
    assert moves[3] == "| acdc | mtunet | HD95 (vox) | 1.25 | +0.25 | +0.00 | 0.25 |"
    verdicts = hook.render_table("rerun_spread_verdicts", tmp_path).splitlines()
    assert verdicts[2] == (
        "| acdc | unet \u2212 reference, DSC (%) | lower (\u22125.00) | same (\u22126.00) "
        "| **none** (\u22120.50) |"
    )


def test_study_time_table_follows_the_pipeline_and_averages_rounds() -> None:
    speed = sys.modules["speed_tables"]

    def row(commit: str, total: float, same: bool) -> dict:
        stages = {"report": 1.0, "train@a-m-1": total - 4.0, "phantoms@a": 2.0, "dvc start": 1.0}
        return {"commit": commit, "total_seconds": total, "stages": stages,
                "metrics_as_committed": same}  # fmt: skip

    doc = {"rows": [row("a" * 40, 100.0, True), row("b" * 40, 60.0, True),
                    row("a" * 40, 80.0, True), row("b" * 40, 70.0, False)]}  # fmt: skip
    lines = speed.study_time(doc).splitlines()
    assert lines[0] == "| stage | `aaaaaaa` (s) | `bbbbbbb` (s) |"
    assert [line.split(" | ")[0][2:] for line in lines[2:]] == [
        "dvc start", "phantoms@a", "train@a-m-1", "report", "**total**", "metrics as committed"
    ]  # fmt: skip
    assert lines[4] == "| train@a-m-1 | 86.0 | 61.0 |"  # means of the two rounds
    assert lines[6] == "| **total** | **90** | **65** |"
    assert lines[7] == "| metrics as committed | yes | no |"  # one round of b differed
    doc["rows"][1]["probe_ms_per_step"] = {"before": 300.4, "after": 410.0}
    doc["rows"][3]["probe_ms_per_step"] = {"before": 290.0, "after": 350.0}
    probe = speed.study_time(doc).splitlines()[-1]
    assert probe == "| host probe (ms per step) | - | 290 to 410 |"  # b's range over its rounds


def test_ray_cancel_table_names_the_aborted_launches(tmp_path: Path) -> None:
    def run(way: str, launch: int, status: int, seconds: float | None) -> dict:
        return {"way": way, "launch": launch, "exit_status": status, "stop_seconds": seconds}

    def doc(sigint: str, rows: list[dict]) -> dict:
        summary = {
            way: {
                "launches": sum(r["way"] == way for r in rows),
                "aborted": sum(r["way"] == way and r["exit_status"] != 130 for r in rows),
                "ray_check_failures": sum(r["way"] == way and r["exit_status"] == 1 for r in rows),
            }
            for way in ("ray cancel", "cancel files")
        }
        return {"rows": rows, "sigint": sigint, "summary": summary}

    _write(
        tmp_path,
        "benchmarks/results/ray_cancel.json",
        doc(
            "default",
            [
                run("ray cancel", 1, 130, 0.4),
                run("ray cancel", 2, 1, 0.38),
                run("cancel files", 1, 130, 0.5),
                run("cancel files", 2, 130, None),
            ],
        ),
    )
    _write(
        tmp_path,
        "benchmarks/results/ray_cancel_sigint_ignored.json",
        doc("ignored", [run("ray cancel", 1, 130, 30.02), run("cancel files", 1, 130, 0.45)]),
    )
    lines = hook.render_table("ray_cancel", tmp_path).splitlines()
    assert lines[2:] == [
        "| default | Ray's cancel (before) | 2 | 1 (2) | 1 | 0.38 to 0.40 |",
        "| default | cancel file (now) | 2 | 0 | 0 | 0.50 to 0.50 |",
        "| ignored | Ray's cancel (before) | 1 | 0 | 0 | 30.02 to 30.02 |",
        "| ignored | cancel file (now) | 1 | 0 | 0 | 0.45 to 0.45 |",
    ]


def test_signed_differences_use_a_true_minus() -> None:
    assert table_format.signed(-5.3548) == "\u22125.35"
    assert table_format.signed(1.4678) == "+1.47"


def test_unknown_marker_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(hook.TableError, match="unknown table marker 'no_such_table'"):
        hook.replace_markers("<!-- table: no_such_table -->\n", tmp_path)


def test_missing_file_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(
        hook.TableError, match=r"'metrics_speed'.*benchmarks/results/metrics_speed\.json not found"
    ):
        hook.render_table("metrics_speed", tmp_path)


def test_missing_field_fails_naming_table_and_file(tmp_path: Path) -> None:
    _write(tmp_path, "benchmarks/results/metrics_speed.json", {"machine": {}, "runs": {"x": {}}})
    with pytest.raises(hook.TableError, match=r"'metrics_speed'.*metrics_speed\.json.*'seconds'"):
        hook.render_table("metrics_speed", tmp_path)


def test_invalid_json_fails_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks/results/metrics_speed.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(hook.TableError, match=r"metrics_speed\.json is not valid JSON"):
        hook.render_table("metrics_speed", tmp_path)


def test_only_a_marker_alone_on_its_line_is_replaced(tmp_path: Path) -> None:
    """A page can quote the marker syntax in running text or code without triggering it."""
    text = "Write `<!-- table: NAME -->` where a table belongs.\n"
    assert hook.replace_markers(text, tmp_path) == text


def test_figure_links_point_at_the_sites_copies() -> None:
    page = "![a](../reports/figures/x.png) [b](../reports/ablation_cpu/report.md) [c](study.md)"
    assert hook.rewrite_figure_links(page, "study.md") == (
        "![a](reports/figures/x.png) [b](reports/ablation_cpu/report.md) [c](study.md)"
    )
    assert hook.rewrite_figure_links("![a](../../reports/f.png)", "sub/page.md") == (
        "![a](../reports/f.png)"
    )


def _page_markers() -> dict[str, list[str]]:
    return {
        page.name: hook.MARKER.findall(page.read_text(encoding="utf-8"))
        for page in sorted(DOCS.glob("*.md"))
    }


def test_every_marker_in_the_docs_renders_from_the_committed_files() -> None:
    """The pages' tables render from the result files in the repository, and every table the
    hook defines is used by a page."""
    used: set[str] = set()
    for page, names in _page_markers().items():
        for name in names:
            table = hook.render_table(name, REPO)
            assert table.count("\n") >= 2, f"{page}: table {name!r} has no rows"
            used.add(name)
    assert used == set(hook.TABLES), f"tables no page uses: {sorted(set(hook.TABLES) - used)}"


def test_cli_page_lists_every_subcommand_and_option() -> None:
    """docs/cli.md names every subcommand (nested ones too: `mtunet study run`) and option
    string of `mtunet`'s parser."""
    import argparse

    from mtunet.cli import _parser

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    names: list[str] = []

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        names.extend(
            o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")
        )
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command, sub in action.choices.items():
                    full = f"{prefix} {command}"
                    assert re.search(rf"`{full}\b", text), f"cli.md lacks `{full}`"
                    walk(sub, full)

    walk(_parser(), "mtunet")
    assert "study" in text and "`mtunet study run" in text  # the walk reached nested commands
    missing = sorted({n for n in names if f"`{n}" not in text})
    assert not missing, f"cli.md lacks the options {missing}"


def test_design_page_maps_every_module() -> None:
    """docs/design.md's map of files names every module of the package, so it stays current."""
    text = (DOCS / "design.md").read_text(encoding="utf-8")
    mapped = text[text.index("The map of files") : text.index("## Module size")]
    missing = [
        path.relative_to(REPO).as_posix()
        for path in sorted((REPO / "mtunet").rglob("*.py"))
        if path.name != "__init__.py" and not re.search(rf"\b{re.escape(path.name)}", mapped)
    ]
    assert not missing, f"docs/design.md's map lacks {missing}"
