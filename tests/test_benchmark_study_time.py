"""benchmarks/study_time.py: stage times from dvc's output, and a whole timed run of a toy
DVC project cloned at two revisions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mtunet.fileio import read_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import study_time as st


def test_stage_seconds_run_from_one_stage_line_to_the_next() -> None:
    events = [
        (0.5, "Verifying data sources\n"),
        (1.0, "Running stage 'phantoms@acdc':\n"),
        (1.5, "> python pipeline/phantoms.py acdc\n"),
        (4.0, "Running stage 'train@acdc-unet-1':\n"),
        (9.0, "Updating lock file 'dvc.lock'\n"),
    ]
    assert st.stage_seconds(events, 10.0) == {
        st.START: 1.0,
        "phantoms@acdc": 3.0,
        "train@acdc-unet-1": 6.0,
    }
    assert st.stage_seconds([], 2.0) == {st.START: 2.0}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A DVC project of two stages whose metrics file is committed, at two revisions: the
    first writes the committed metrics, the second other ones."""
    repo = tmp_path / "toy"
    (repo / "mtunet").mkdir(parents=True)
    (repo / "mtunet" / "__init__.py").write_text("")
    (repo / "metrics").mkdir()
    (repo / "metrics" / "m.json").write_text('{"dsc": 1}\n')
    (repo / "make.py").write_text(
        "import json, sys, time\ntime.sleep(0.2)\n"
        "open(sys.argv[1], 'w').write(json.dumps({'dsc': int(sys.argv[2])}) + '\\n')\n"
    )
    stages = (
        "stages:\n"
        "  first:\n    cmd: python make.py a.txt 1\n    deps: [make.py]\n    outs: [a.txt]\n"
        "  second:\n    cmd: python make.py metrics/m.json {VALUE}\n    deps: [a.txt]\n"
        "    metrics:\n      - metrics/m.json:\n          cache: false\n"
    )
    (repo / "dvc.yaml").write_text(stages.replace("{VALUE}", "1"))
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "same metrics")
    _git(repo, "tag", "same")
    (repo / "dvc.yaml").write_text(stages.replace("{VALUE}", "2"))
    _git(repo, "commit", "-qam", "other metrics")
    return repo


def test_a_timed_run_per_revision_with_its_stages_and_metrics_check(
    toy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "study_time.json"
    result = st.main(
        ["--repo", str(toy), "--refs", "same", "HEAD", "--out", str(out),
         "--keep", str(tmp_path / "clones"), "--probe-steps", "0"]
    )  # fmt: skip
    assert read_json(out)["benchmark"] == "study_time"
    same, other = result["rows"]
    assert (same["ref"], other["ref"]) == ("same", "HEAD")
    assert same["commit"] != other["commit"]
    for row in (same, other):
        assert list(row["stages"]) == [st.START, "first", "second"]
        assert row["stages"]["first"] >= 0.2  # the stage's own sleep
        assert sum(row["stages"].values()) == pytest.approx(row["total_seconds"])
    assert same["metrics_as_committed"] is True
    assert other["metrics_as_committed"] is False  # its stage wrote other metrics
    assert "probe_ms_per_step" not in same


def test_the_host_speed_is_probed_before_and_after_each_run(toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "study_time.json"
    result = st.main(["--repo", str(toy), "--out", str(out), "--probe-steps", "1"])
    (row,) = result["rows"]
    probe = row["probe_ms_per_step"]
    assert set(probe) == {"before", "after"}
    # A quick MT-UNet training step on a CPU: more than a millisecond, less than a minute.
    assert all(1.0 < ms < 60_000.0 for ms in probe.values()), probe
    assert result["probe_steps"] == 1
    assert "| probe (ms/step) |" in st.table(result["rows"])


def test_a_clone_that_imports_another_mtunet_is_refused(toy: Path, tmp_path: Path) -> None:
    (toy / "mtunet" / "__init__.py").unlink()
    _git(toy, "commit", "-qam", "no package")
    with pytest.raises(SystemExit, match="not from the clone"):
        st.main(["--repo", str(toy), "--out", str(tmp_path / "x.json")])
