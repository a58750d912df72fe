"""The DVC stage graph, staleness propagated downstream, and ``mtunet study plan``, on a toy
DVC repository whose stages take no time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtunet import cli
from mtunet.scaleout.graph import StageInfo, StudyRepo, describe_change, stale_stages
from mtunet.scaleout.plan import make_plan

DVC_YAML = """\
stages:
  prep:
    cmd: python -c "import pathlib; pathlib.Path('data').mkdir(exist_ok=True); pathlib.Path('data/x.txt').write_text('x')"
    outs:
      - data
  train:
    foreach: [a, b]
    do:
      cmd: python step.py ${item}
      deps:
        - data
        - step.py
      outs:
        - out/${item}.txt
  report:
    cmd: python -c "import pathlib; pathlib.Path('report.txt').write_text('r')"
    deps:
      - out
    outs:
      - report.txt
"""
STEP = """\
import pathlib, sys
pathlib.Path("out").mkdir(exist_ok=True)
pathlib.Path(f"out/{sys.argv[1]}.txt").write_text(sys.argv[1])
"""


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A git and DVC repository at ``root`` holding ``files`` (path: text), committed."""
    for name, text in files.items():
        (root / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _run(["git", "init", "-q"], root)
    _run([sys.executable, "-m", "dvc", "init", "-q"], root)
    _run([*git, "add", "-A"], root)
    _run([*git, "commit", "-qm", "toy"], root)
    return root


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path,
        {
            "dvc.yaml": DVC_YAML,
            "step.py": STEP,
            "params.yaml": "resources:\n  train: {gpus: 0.5, cpus: 1}\n",
        },
    )


def test_graph_order_upstream_and_propagated_staleness(toy: Path) -> None:
    repo = StudyRepo(toy)
    try:
        stages = repo.stages()
        assert list(stages) == ["prep", "train@a", "train@b", "report"]
        assert stages["train@a"].upstream == ("prep",)
        assert stages["report"].upstream == ("train@a", "train@b")
        assert stages["train@b"].commands == ("python step.py b",)
        assert stages["train@b"].kind == "train" and stages["report"].kind == "other"
        assert stages["prep"].wdir == str(toy)
        assert set(repo.status()) == set(stages)  # nothing ran yet
        assert repo.status()["report"] == "not run yet"
    finally:
        repo.close()
    _run([sys.executable, "-m", "dvc", "repro", "-q"], toy)
    (toy / "step.py").write_text(STEP + "# changed\n")
    repo = StudyRepo(toy)
    try:
        status = repo.status()
        # DVC flags the stages whose own deps changed, not the report that reads them.
        assert set(status) == {"train@a", "train@b"}
        assert "step.py" in status["train@a"] and "modified" in status["train@a"]
        assert stale_stages(repo.stages(), status) == {"train@a", "train@b", "report"}
        assert repo.changed("train@a") and not repo.changed("report")
    finally:
        repo.close()


def test_stale_stages_follow_every_path_downstream() -> None:
    def info(name: str, *up: str) -> StageInfo:
        return StageInfo(name, ("x",), ".", up, "other")

    stages = {s.name: s for s in [info("a"), info("b", "a"), info("c"), info("d", "b", "c")]}
    assert stale_stages(stages, ["a"]) == {"a", "b", "d"}
    assert stale_stages(stages, ["c", "unknown"]) == {"c", "d"}
    assert stale_stages(stages, []) == set()


def test_describe_change_is_short() -> None:
    entries = [
        {"changed deps": {"a.py": "modified", "b.py": "modified", "c.py": "deleted"}},
        "changed command",
    ]
    assert describe_change(entries) == (
        "changed deps (deleted/modified: a.py, b.py +1); changed command"
    )


def test_plan_lists_runs_status_and_an_estimate(
    toy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _run([sys.executable, "-m", "dvc", "repro", "-q", "prep"], toy)
    logs = toy / "logs/study"
    logs.mkdir(parents=True)
    rec = {"stage": "train@a", "started": 0.0, "ended": 60.0, "returncode": 0}
    (logs / "train@a.json").write_text(json.dumps(rec))
    plan = make_plan(toy, gpus=1, cpus=4)
    rows = {r.stage.name: r for r in plan.rows}
    assert rows["prep"].status == "up to date" and not rows["prep"].stale
    assert rows["train@a"].status == "stale: not run yet"
    assert (rows["train@a"].gpus, rows["train@a"].cpus) == (0.5, 1)
    # No train.json in the toy: the launcher's records give the times.
    assert (rows["train@a"].seconds, rows["train@a"].source) == (60.0, "measured")
    assert rows["train@b"].seconds == 60.0 and "other train stages" in rows["train@b"].source
    assert rows["report"].seconds is None
    # Two half-GPU runs share the one GPU.
    assert plan.schedule.start["train@a"] == plan.schedule.start["train@b"] == 0.0
    assert plan.schedule.wall_seconds == 60.0 and plan.schedule.unknown == ("report",)
    # Without GPUs every run reserves none.
    assert make_plan(toy, gpus=0, cpus=2).rows[1].gpus == 0.0

    monkeypatch.chdir(toy)
    assert cli.main(["study", "plan", "--gpus", "2", "--cpus", "2"]) == 0
    out = capsys.readouterr().out
    assert "train@b" in out and "stale: not run yet" in out and "up to date" in out
    assert "4 stages, 3 stale, 1 up to date." in out
    assert "Estimate on 2 GPU(s) and 2 CPUs" in out
    assert cli.main(["study", "plan", "--epoch-seconds", "mars=3"]) == 2
    assert "unknown dataset 'mars'" in capsys.readouterr().err


def test_study_run_without_ray_says_how_to_install_it(
    toy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.chdir(toy)
    assert cli.main(["study", "run"]) == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err


def test_study_commands_outside_a_dvc_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert cli.main(["study", "plan"]) == 2
    assert "not inside a DVC repository" in capsys.readouterr().err
