"""End to end: the DVC study on tiny phantoms in a temporary clone of this repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-6000:]}"
    return out


def _tiny_params(params: dict) -> dict:
    """Shrink the quick default further: a pipeline check, not a study."""
    small = {"size": 48, "min_slices": 6, "max_slices": 8}
    params["datasets"]["synapse"]["phantoms"].update(n_train=2, n_test=2, **small)
    params["datasets"]["acdc"]["phantoms"].update(n_train=2, n_val=1, n_test=1, **small)
    params["model"].update(img_size=48, width_mult=0.125)
    params["train"].update(epochs=2)
    return params


def _clone(tmp: Path) -> Path:
    """Copy what git would hold (tracked and untracked-not-ignored files) into ``tmp``."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    dest = tmp / "study"
    for rel in filter(None, files):
        src = REPO / rel
        # Results of a study run in the checkout must not leak into the clone.
        if not src.is_file() or rel.startswith(("reports/", "metrics/", "dvclive/", "dvc.lock")):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    return dest


@pytest.mark.slow
def test_dvc_study_end_to_end(tmp_path: Path) -> None:
    if shutil.which("dvc") is None and not (Path(sys.executable).parent / "dvc").exists():
        pytest.fail("dvc is not installed: pip install -e '.[dev]' installs it")
    study = _clone(tmp_path)
    params_path = study / "params.yaml"
    params = _tiny_params(yaml.safe_load(params_path.read_text()))
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
        DVC_NO_ANALYTICS="1",
        OMP_NUM_THREADS="2",
    )
    _run(["git", "init", "-q"], study, env)
    _run(["git", "add", "-A"], study, env)
    _run(["git", "commit", "-qm", "study"], study, env)

    out = _run(["dvc", "repro"], study, env)
    for stage in ("phantoms", "preprocess", "train", "evaluate"):
        for ds in ("synapse", "acdc"):
            assert f"'{stage}@{ds}'" in out
    for ds, n_classes in (("synapse", 8), ("acdc", 3)):
        metrics = json.loads((study / "metrics" / f"{ds}.json").read_text())
        assert 0.0 <= metrics["dsc"] <= 100.0
        assert len(metrics["per_class"]) == n_classes
        assert metrics["model_selection"]["rule"] == ("best_val" if ds == "acdc" else "last")
        assert metrics["data_source"] == "synthetic"
        assert 0.0 <= metrics["threshold_baseline"]["dsc"] <= 100.0
    report = (study / "reports" / "report.md").read_text()
    assert "Synapse" in report and "ACDC" in report and "published" in report.lower()
    assert any((study / "reports").rglob("*.png"))

    # A second repro does nothing.
    out = _run(["dvc", "repro"], study, env)
    assert "Running stage" not in out
    status = _run(["dvc", "status"], study, env)
    assert "up to date" in status

    _run(["git", "add", "-A"], study, env)
    _run(["git", "commit", "-qm", "baseline results"], study, env)
    baseline = json.loads((study / "metrics" / "synapse.json").read_text())

    # An ablation reruns training, evaluation and the report, not the data stages.
    out = _run(["dvc", "exp", "run", "-S", "model.win_size=2"], study, env)
    assert "'train@synapse'" in out and "'evaluate@acdc'" in out and "'report'" in out
    assert "Running stage 'phantoms" not in out and "Running stage 'preprocess" not in out
    proc = subprocess.run(
        ["dvc", "exp", "show", "--json"],
        cwd=study,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    text = json.dumps(json.loads(proc.stdout))
    assert "metrics/synapse.json" in text and '"dsc"' in text
    ablated = json.loads((study / "metrics" / "synapse.json").read_text())
    assert ablated != baseline
    report = (study / "reports" / "report.md").read_text()
    assert "model.win_size" in report
