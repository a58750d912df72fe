"""End to end: the DVC study on tiny phantoms in a temporary clone of this repository."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]


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
    # last.pt after every epoch: the interruption tests resume from the first one.
    params["train"].update(epochs=2, checkpoint_every=1)
    params["study"].update(
        models=["mtunet", "unet"],
        seeds=[1],
        ablations={"win_size_2": {"win_size": 2}},
        n_bootstrap=200,
    )
    return params


_TORCH_FREE = """
import sys
from pathlib import Path

import yaml

from mtunet.stages import run_phantoms, run_preprocess

root, params = Path(sys.argv[1]), yaml.safe_load(Path(sys.argv[2]).read_text())
for dataset in ("synapse", "acdc"):
    run_phantoms(params, dataset, root)
    run_preprocess(params, dataset, root)
import mtunet.comparison, mtunet.report.figures, mtunet.report.report, mtunet.study

print("torch loaded:", "torch" in sys.modules)
"""


def test_stages_without_a_network_never_load_torch(tmp_path: Path) -> None:
    """Phantoms and preprocessing run without torch, and the report's and the statistics'
    modules import without it: loading torch costs each such stage about 2 s."""
    params = _tiny_params(yaml.safe_load((REPO / "params.yaml").read_text()))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = _run(
        [sys.executable, "-c", _TORCH_FREE, str(tmp_path), str(tmp_path / "params.yaml")],
        REPO,
        dict(os.environ),
    )
    assert (tmp_path / "data/processed/acdc/dataset.json").is_file()
    assert "torch loaded: False" in out


# Results of a study run in the checkout must not leak into the clone.
RESULTS = ("reports/", "metrics/", "dvclive/", "dvc.lock")


def study_files(repo: Path) -> list[str]:
    """What a fresh clone would hold, as the working tree has it (paths relative to ``repo``).

    Tracked files (modified ones included) and untracked files git does not ignore, less the
    study's results and anything inside a virtual environment (a folder holding
    ``pyvenv.cfg``, whatever its name).
    """
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    venv: dict[Path, bool] = {}

    def in_venv(rel: Path) -> bool:
        for parent in rel.parents:
            if parent not in venv:
                venv[parent] = (repo / parent / "pyvenv.cfg").is_file()
            if venv[parent]:
                return True
        return False

    return sorted(
        {
            rel
            for rel in filter(None, listed)
            if (repo / rel).is_file() and not rel.startswith(RESULTS) and not in_venv(Path(rel))
        }
    )


def _clone(tmp: Path) -> Path:
    """Copy :func:`study_files` of this checkout into ``tmp / "study"``."""
    dest = tmp / "study"
    for rel in study_files(REPO):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    return dest


def test_study_files_skip_ignored_results_and_any_venv(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    files = {
        ".gitignore": ".venv/\n*.log\n",
        "pkg/mod.py": "x = 1\n",
        "tracked_then_deleted.py": "",
        "reports/report.md": "",
        "new.py": "",
        "ignored.log": "",
        ".venv/pyvenv.cfg": "",
        "venv/pyvenv.cfg": "home = /usr/bin\n",
        "venv/lib/site.py": "",
        "tools/env/pyvenv.cfg": "",
        "tools/env/bin/python": "",
        "tools/run.py": "",
    }
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    tracked = ["pkg/mod.py", "tracked_then_deleted.py", "reports/report.md", ".gitignore"]
    subprocess.run([*git, "add", *tracked], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    (repo / "pkg/mod.py").write_text("x = 2\n")  # modified, uncommitted
    (repo / "tracked_then_deleted.py").unlink()
    assert study_files(repo) == [".gitignore", "new.py", "pkg/mod.py", "tools/run.py"]


@pytest.mark.slow
def test_dvc_study_end_to_end(tmp_path: Path) -> None:
    if importlib.util.find_spec("dvc") is None:
        pytest.fail("dvc is not installed: pip install -e '.[dev]' installs it")
    study = _clone(tmp_path)
    params_path = study / "params.yaml"
    params = _tiny_params(yaml.safe_load(params_path.read_text()))
    params["train"]["epochs"] = {"synapse": 2, "acdc": 1}  # per dataset, as the quick default
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))

    env = dict(os.environ)
    # The stages' `python` is this interpreter, and it imports the clone's mtunet (not an
    # editable install's); dvc runs as `python -m dvc`, so nothing needs an activated venv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(study)
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
    where = _run(["python", "-c", "import mtunet; print(mtunet.__file__)"], study, env)
    assert Path(where.strip()).resolve() == (study / "mtunet/__init__.py").resolve()

    out = _run([*DVC, "repro"], study, env)
    for ds in ("synapse", "acdc"):
        for stage in ("phantoms", "preprocess", "compare"):
            assert f"'{stage}@{ds}'" in out
        for stage in ("train", "evaluate"):
            for variant in ("mtunet", "unet"):
                assert f"'{stage}@{ds}-{variant}-1'" in out
            assert f"'{stage}_ablation@{ds}-win_size_2-1'" in out
    for ds, n_classes in (("synapse", 8), ("acdc", 3)):
        metrics = json.loads((study / "metrics" / f"{ds}.json").read_text())
        assert 0.0 <= metrics["dsc"] <= 100.0
        assert len(metrics["per_class"]) == n_classes
        assert metrics["model_selection"]["rule"] == ("best_val" if ds == "acdc" else "last")
        assert metrics["data_source"] == "synthetic"
        trained = json.loads((study / "models" / ds / "unet" / "seed1" / "train.json").read_text())
        assert trained["epochs_completed"] == params["train"]["epochs"][ds]
        assert 0.0 <= metrics["threshold_baseline"]["dsc"] <= 100.0
        assert set(metrics["models"]) == {"mtunet", "unet"}
        assert set(metrics["ablations"]) == {"win_size_2"}
        own = json.loads((study / "eval" / ds / "mtunet" / "seed1" / "metrics.json").read_text())
        assert metrics["dsc"] == own["dsc"]  # one seed: the reference run's own summary
        comp = json.loads((study / "compare" / ds / "comparison.json").read_text())
        unet = comp["variants"]["unet"]
        assert unet["complexity"]["params"] > 0 and unet["complexity"]["gflops"] > 0
        assert [r["variant"] for r in comp["comparisons"]["models"]["dsc"]] == ["unet"]
        assert [r["variant"] for r in comp["comparisons"]["ablations"]["dsc"]] == ["win_size_2"]
    report = (study / "reports" / "report.md").read_text()
    assert "Synapse" in report and "ACDC" in report and "published" in report.lower()
    assert "unet" in report and "win_size_2" in report
    tables = {p.name for p in (study / "reports" / "tables").glob("*.csv")}
    assert {"synapse_models.csv", "synapse_vs_reference.csv", "synapse_ablations.csv"} <= tables
    assert any("forest" in p.name for p in (study / "reports").rglob("*.png"))

    # A second repro does nothing.
    out = _run([*DVC, "repro"], study, env)
    assert "Running stage" not in out
    status = _run([*DVC, "status"], study, env)
    assert "up to date" in status

    # Adding a seed trains only the new runs, then recomputes the comparison.
    params["study"]["seeds"] = [1, 2]
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run([*DVC, "repro"], study, env)
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    new_runs = {
        f"{stage}@{ds}-{variant}-2"
        for stage, variant in [
            ("train", "mtunet"),
            ("train", "unet"),
            ("train_ablation", "win_size_2"),
            ("evaluate", "mtunet"),
            ("evaluate", "unet"),
            ("evaluate_ablation", "win_size_2"),
        ]
        for ds in ("synapse", "acdc")
    }
    assert ran == new_runs | {"compare@synapse", "compare@acdc", "report"}
    comp = json.loads((study / "compare" / "synapse" / "comparison.json").read_text())
    assert comp["variants"]["unet"]["dsc"]["n_seeds"] == 2
    assert comp["variants"]["unet"]["dsc"]["seed_ci"] is not None

    _run(["git", "add", "-A"], study, env)
    _run(["git", "commit", "-qm", "baseline results"], study, env)
    baseline = json.loads((study / "metrics" / "synapse.json").read_text())

    # A one-off ablation reruns training, evaluation and the report, not the data stages.
    out = _run([*DVC, "exp", "run", "-S", "model.win_size=2", "-S", "study.seeds=[1]"], study, env)
    assert "'train@synapse-mtunet-1'" in out and "'evaluate@acdc-unet-1'" in out
    assert "'report'" in out
    assert "Running stage 'phantoms" not in out and "Running stage 'preprocess" not in out
    proc = subprocess.run(
        [*DVC, "exp", "show", "--json"],
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


def test_ci_runs_the_readme_commands() -> None:
    """`.ci/run` runs the README's test command step by step, with `ruff check .` before pytest."""
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    commands = [b.strip() for b in blocks if b.strip().endswith("python -m pytest")]
    assert len(commands) == 1, "README: expected one bash block ending in `python -m pytest`"
    steps = commands[0].split(" && ")
    assert steps[:2] == ["python3 -m venv .venv", ". .venv/bin/activate"]
    ci = [
        line.strip()
        for line in (REPO / ".ci/run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    runs = [line for line in ci if line in {*steps, "ruff check ."}]
    assert runs == [*steps[:-1], "ruff check .", steps[-1]], ci
