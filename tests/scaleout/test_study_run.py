"""`mtunet study run` on a local Ray instance against a serial `dvc repro` of the same study.

The tiny study of ``tests/test_pipeline.py`` with 2 models (MT-UNet and a user factory) x 2
seeds + 1 ablation on both datasets (31 stages), in two identical git clones: one reproduced
by `dvc repro` with one thread, one by `mtunet study run` on 2 CPUs and 2 declared GPUs with
one CPU (one thread) per run, through four launches:

1. the factory raises: only its runs fail, the command exits 1 naming them, every other run
   is recorded, and concurrent runs saw different GPUs;
2. the factory fixed, one of its runs SIGKILLed in its second epoch: only the factory's runs
   start, the killed one fails and leaves nothing DVC or a later stage accepts;
3. that run hangs in its second epoch and the launcher gets SIGTERM: it exits 130 and the
   run's process is gone;
4. the relaunch runs only what is left, resuming the run from its ``last.pt``.

Then every result equals the serial one byte for byte, `dvc status` is clean, `dvc repro`
runs nothing and `mtunet study plan` lists every stage as up to date.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_pipeline import REPO, _tiny_params, study_files

DVC = [sys.executable, "-m", "dvc"]
MTUNET = [sys.executable, "-m", "mtunet"]
FACTORY = "userfac.nets:build"
KILLED = f"train@synapse-{FACTORY}-1"

NETS = '''"""A user network for the scale-out test, steered by marker files in $USERNET_MARKERS.

``break``: the factory raises. ``kill-<stage>`` / ``hang-<stage>`` holding the path of the
run's last.pt: once that file exists (the first epoch is done), the run SIGKILLs itself, or
writes its pid to ``<marker>.pid`` and sleeps.
"""

import os
import signal
import time
from pathlib import Path

from torch import nn


def _marker(kind):
    folder = os.environ.get("USERNET_MARKERS")
    return Path(folder) / f"{kind}-{os.environ.get('DVC_STAGE', '')}" if folder else None


class Net(nn.Module):
    def __init__(self, in_channels, num_classes, hidden=8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, num_classes, 1),
        )

    def forward(self, x):
        if self.training:
            for kind in ("kill", "hang"):
                marker = _marker(kind)
                if marker and marker.exists() and Path(marker.read_text()).exists():
                    if kind == "kill":
                        marker.unlink()
                        os.kill(os.getpid(), signal.SIGKILL)
                    Path(f"{marker}.pid").write_text(str(os.getpid()))
                    time.sleep(3600)
        return self.body(x)


def build(in_channels, num_classes, img_size):
    folder = os.environ.get("USERNET_MARKERS")
    if folder and (Path(folder) / "break").exists():
        raise RuntimeError("this factory is broken")
    return Net(in_channels, num_classes)
'''

RESOURCES = {
    "train": {"gpus": 1, "cpus": 1},
    "evaluate": {"gpus": 1, "cpus": 1},
    "other": {"gpus": 0, "cpus": 1},
}


def _env(study: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(study)
    # Fixed dates: both clones get the same commit, which the report's experiment table names.
    date = "2000-01-01T00:00:00+0000"
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
        GIT_AUTHOR_DATE=date,
        GIT_COMMITTER_DATE=date,
        DVC_NO_ANALYTICS="1",
        RAY_USAGE_STATS_ENABLED="0",
    )
    env.pop("USERNET_MARKERS", None)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], ok: bool = True) -> tuple[int, str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-6000:]}"
    return proc.returncode, out


def _make_study(dest: Path) -> tuple[Path, dict[str, str]]:
    """A git clone of the checkout with the test's params and user network, committed."""
    for rel in study_files(REPO):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    params = _tiny_params(yaml.safe_load((dest / "params.yaml").read_text()))
    params["study"].update(models=["mtunet", FACTORY], seeds=[1, 2])
    params["resources"] = RESOURCES
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / "userfac").mkdir()
    (dest / "userfac" / "__init__.py").write_text("")
    (dest / "userfac" / "nets.py").write_text(NETS)
    env = _env(dest)
    _run(["git", "init", "-q"], dest, env)
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-qm", "study"], dest, env)
    return dest, env


def _started(out: str) -> set[str]:
    return set(re.findall(r"\| started (\S+) on ", out))


def _failed(out: str) -> set[str]:
    line = re.search(r"^Failed runs: (.*)$", out, flags=re.M)
    return set(line.group(1).split()) if line else set()


def _records(study: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (study / "logs" / "study").glob("*.json")}


def _check_gpus(study: Path) -> None:
    """Every GPU run saw one GPU of the two, and runs at the same time saw different ones."""
    runs = [
        r
        for r in _records(study).values()
        if r["stage"].split("@")[0] in ("train", "train_ablation", "evaluate", "evaluate_ablation")
        and r["returncode"] == 0
    ]
    assert len(runs) >= 8
    assert all(r["cuda_visible_devices"] in ("0", "1") for r in runs), runs
    overlaps = 0
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            if a["started"] < b["ended"] and b["started"] < a["ended"]:
                overlaps += 1
                assert a["cuda_visible_devices"] != b["cuda_visible_devices"], (a, b)
    assert overlaps > 0, "no two runs ran at once"
    info = json.loads((study / "models/acdc/mtunet/seed2/train.json").read_text())
    rec = _records(study)["train@acdc-mtunet-2"]
    assert info["resources"]["cuda_visible_devices"] == rec["cuda_visible_devices"]
    assert info["resources"]["cpus"] == 1 and info["device"] == "cpu"


def _launch(study: Path, env: dict[str, str], markers: Path) -> tuple[int, str]:
    cmd = [*MTUNET, "study", "run", "--num-cpus", "2", "--num-gpus", "2"]
    return _run(cmd, study, {**env, "USERNET_MARKERS": str(markers)}, ok=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead, only not yet reaped
        return fh.read().split(")")[-1].split()[0] != "Z"


def _interrupt_hanging_run(study: Path, env: dict[str, str], markers: Path) -> None:
    """Launch 3: the run hangs in its second epoch, the launcher gets SIGTERM."""
    last = study / "models/synapse" / FACTORY / "seed1/last.pt"
    hang = markers / f"hang-{KILLED}"
    hang.write_text(str(last))
    cmd = [*MTUNET, "study", "run", "--num-cpus", "2", "--num-gpus", "2"]
    log = study.parent / "launch3.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd, cwd=study, env={**env, "USERNET_MARKERS": str(markers)}, stdout=fh, stderr=fh
        )
        try:
            deadline = time.monotonic() + 300
            pid_file = Path(f"{hang}.pid")
            while not pid_file.is_file():
                assert proc.poll() is None, log.read_text()[-4000:]
                assert time.monotonic() < deadline, "the run never reached its second epoch"
                time.sleep(0.5)
            time.sleep(0.5)
            pid = int(pid_file.read_text())
            assert _alive(pid)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 130, log.read_text()[-4000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    out = log.read_text()
    assert "Interrupted (SIGTERM): cancelled 1 submitted stage(s)" in out, out[-4000:]
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid), "the cancelled run's process survived the launcher"
    killed_log = study / "logs/study" / f"{KILLED}.log"
    deadline = time.monotonic() + 30  # the task writes its last lines as it ends
    while "cancelled" not in killed_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "cancelled" in killed_log.read_text()
    assert not (last.parent / "model.pt").exists()
    hang.unlink()


def _same_tree(a: Path, b: Path) -> list[str]:
    """Files that differ (or exist on one side only) between two folders. DVC's own
    ``.gitignore`` files list the outputs in the order the stages were recorded, so they
    are compared as sets of lines."""
    diffs = []
    names = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    names |= {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    for rel in sorted(names):
        if not (a / rel).is_file() or not (b / rel).is_file():
            diffs.append(f"{rel} (one side only)")
        elif rel.name == ".gitignore":
            lines = [set((root / rel).read_text().splitlines()) for root in (a, b)]
            if lines[0] != lines[1]:
                diffs.append(str(rel))
        elif not filecmp.cmp(a / rel, b / rel, shallow=False):
            diffs.append(str(rel))
    return diffs


@pytest.mark.slow
def test_ray_study_equals_serial_repro_through_failure_kill_and_interruption(
    tmp_path: Path,
) -> None:
    serial, serial_env = _make_study(tmp_path / "serial")
    study, env = _make_study(tmp_path / "ray")
    markers = tmp_path / "markers"
    markers.mkdir()
    serial_env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    _run([*DVC, "repro"], serial, serial_env)

    # 1. A broken user factory fails only its own runs.
    (markers / "break").write_text("")
    rc, out = _launch(study, env, markers)
    factory_trains = {
        f"train@{ds}-{FACTORY}-{seed}" for ds in ("synapse", "acdc") for seed in (1, 2)
    }
    assert rc == 1, out[-4000:]
    assert _failed(out) == factory_trains, out[-4000:]
    for name in factory_trains:
        assert f"failed: {name}: exit status 1 after 1 attempt(s); log: " in out
        assert "this factory is broken" in (study / "logs/study" / f"{name}.log").read_text()
    assert "not run: report" in out
    _check_gpus(study)
    _, status = _run([*DVC, "status"], study, env)
    assert "train@synapse-mtunet-1:" not in status and "evaluate_ablation@acdc" not in status
    assert f"{KILLED}:" in status

    # 2. Fixed; one of its runs is killed in its second epoch.
    (markers / "break").unlink()
    last = study / "models/synapse" / FACTORY / "seed1/last.pt"
    (markers / f"kill-{KILLED}").write_text(str(last))
    rc, out = _launch(study, env, markers)
    assert rc == 1 and _failed(out) == {KILLED}, out[-4000:]
    assert _started(out) <= factory_trains | {
        f"evaluate@{ds}-{FACTORY}-{seed}" for ds in ("synapse", "acdc") for seed in (1, 2)
    } | {"compare@acdc"}, out[-4000:]
    assert factory_trains <= _started(out)
    assert "exit status -9" in out or "exit status 137" in out, out[-4000:]
    # Nothing of the killed run is accepted: no model, no evaluation, DVC calls it stale.
    assert last.is_file() and not (last.parent / "model.pt").exists()
    assert not (study / "eval/synapse" / FACTORY / "seed1").exists()
    _, status = _run([*DVC, "status"], study, env)
    assert f"{KILLED}:" in status and "compare@synapse:" in status

    # 3. Interrupted while that run hangs.
    _interrupt_hanging_run(study, env, markers)

    # 4. The relaunch runs only what is left, and the training resumes.
    rc, out = _launch(study, env, markers)
    assert rc == 0, out[-4000:]
    assert _started(out) == {
        KILLED,
        f"evaluate@synapse-{FACTORY}-1",
        "compare@synapse",
        "report",
    }, out[-4000:]
    resumed = json.loads((last.parent / "train.json").read_text())
    assert resumed["resumed_from_epoch"] == 1

    # The results equal the serial reproduction's, byte for byte.
    for folder in ("metrics", "eval", "compare", "reports"):
        assert _same_tree(serial / folder, study / folder) == [], folder
    models = sorted(p.relative_to(serial) for p in serial.glob("models/*/*/*/model.pt"))
    assert len(models) == 12
    for rel in models:
        assert filecmp.cmp(serial / rel, study / rel, shallow=False), rel

    _, status = _run([*DVC, "status"], study, env)
    assert "Data and pipelines are up to date" in status, status
    _, out = _run([*DVC, "repro"], study, env)
    assert "Running stage" not in out, out[-4000:]
    _, plan = _run([*MTUNET, "study", "plan", "--gpus", "2"], study, env)
    assert f"train@acdc-{FACTORY}-2" in plan and "31 stages, 0 stale, 31 up to date." in plan
