"""benchmarks/dvc_overhead.py on a toy DVC project: each parser really runs, and the rows
summarise the rounds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mtunet.fileio import read_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dvc_overhead as bench


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A committed DVC project of one stage that has run once."""
    repo = tmp_path / "toy"
    repo.mkdir()
    (repo / "make.py").write_text("import sys\nopen(sys.argv[1], 'w').write('a\\n')\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n  first:\n    cmd: python make.py a.txt\n    deps: [make.py]\n    outs: [a.txt]\n"
    )
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    bench.run_dvc("c", ["repro", "-q"], repo)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")
    return repo


def test_each_parser_runs_dvc_with_its_own_yaml_parser(toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "dvc_overhead.json"
    result = bench.main(
        ["--repo", str(toy), "--lock-refs", "HEAD", "--repro", "first",
         "--rounds", "2", "--repeats", "1", "--out", str(out)]
    )  # fmt: skip
    assert read_json(out)["benchmark"] == "dvc_overhead"
    modules = {(r["command"], r["parser"]): r["parser_module"] for r in result["runs"]}
    assert set(modules) == {(c, p) for c in ("status", "repro -f -s first") for p in ("c", "pure")}
    for (_, parser), module in modules.items():
        # The C parser is ruamel.yaml.clib's extension; blocking it leaves the pure one.
        assert ("_ruamel_yaml" in module) == (parser == "c"), (parser, module)
    assert [lk["lock"] for lk in result["locks"]] == ["working tree", "HEAD"]
    assert all(lk["stages"] == 1 and lk["safe_c"] > 0 for lk in result["locks"])
    rows = {(r["command"], r["parser"]): r for r in result["rows"]}
    assert all(r["rounds"] == 2 for r in rows.values())
    status_c = rows["status", "c"]
    assert status_c["pure_over_c_dvc_cpu"] == pytest.approx(
        rows["status", "pure"]["dvc_cpu_seconds"] / status_c["dvc_cpu_seconds"]
    )
    assert "pure_over_c_dvc_cpu" not in rows["status", "pure"]


def test_a_failing_dvc_command_names_itself(toy: Path) -> None:
    with pytest.raises(RuntimeError, match="dvc repro -s no-such-stage"):
        bench.run_dvc("pure", ["repro", "-s", "no-such-stage"], toy)


def test_summarise_takes_medians_per_command_and_parser() -> None:
    runs = [
        {"command": "status", "parser": p, "wall_seconds": w, "dvc_cpu_seconds": c}
        for p, w, c in [("c", 1.0, 1.0), ("c", 3.0, 2.0), ("c", 2.0, 9.0),
                        ("pure", 4.0, 4.0), ("pure", 6.0, 6.0)]
    ]  # fmt: skip
    c, pure = bench.summarise(runs)
    assert (c["wall_seconds"], c["dvc_cpu_seconds"], c["rounds"]) == (2.0, 2.0, 3)
    assert (pure["wall_seconds"], pure["dvc_cpu_seconds"]) == (5.0, 5.0)
    assert c["pure_over_c_dvc_cpu"] == 2.5
