"""Ctrl-C in a terminal: SIGINT to the launcher's whole process group, Ray's own processes
included, while two stages run. The launcher exits 130 and leaves nothing running and
nothing recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_graph_plan import make_repo
from test_study_run import _alive

DVC_YAML = """\
stages:
  sleep:
    foreach: [a, b]
    do:
      cmd: python sleep.py ${item}
      deps:
        - sleep.py
      outs:
        - out/${item}.txt
"""
SLEEP = """\
import os, pathlib, sys, time
pathlib.Path(f"pid_{sys.argv[1]}").write_text(str(os.getpid()))
time.sleep(600)
pathlib.Path("out").mkdir(exist_ok=True)
pathlib.Path(f"out/{sys.argv[1]}.txt").write_text(sys.argv[1])
"""


@pytest.mark.slow
def test_ctrl_c_stops_every_stage_and_exits_130(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path,
        {
            "dvc.yaml": DVC_YAML,
            "sleep.py": SLEEP,
            "params.yaml": "resources:\n"
            + "".join(
                f"  {kind}: {{gpus: 0, cpus: 1}}\n" for kind in ("train", "evaluate", "other")
            ),
        },
    )
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [sys.executable, "-m", "mtunet", "study", "run", "--num-cpus", "2"]
    log = tmp_path / "launch.log"
    with open(log, "w") as fh:
        # A process group of its own, as a terminal's foreground job has.
        proc = subprocess.Popen(
            cmd, cwd=repo, env=env, stdout=fh, stderr=fh, start_new_session=True
        )
        try:
            pids = [repo / "pid_a", repo / "pid_b"]
            deadline = time.monotonic() + 300
            while not all(p.is_file() and p.read_text() for p in pids):
                assert proc.poll() is None, log.read_text()[-4000:]
                assert time.monotonic() < deadline, "the stages never started"
                time.sleep(0.5)
            os.killpg(proc.pid, signal.SIGINT)
            assert proc.wait(timeout=120) == 130, log.read_text()[-4000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    out = log.read_text()
    assert "Interrupted (SIGINT): cancelled 2 submitted stage(s) (sleep@a, sleep@b)" in out, out
    commands = [int(p.read_text()) for p in pids]
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in commands) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in commands), "a stage's command survived the launcher"
    logs = repo / "logs" / "study"
    for name in ("sleep@a", "sleep@b"):
        assert "=== exit status cancelled" in (logs / f"{name}.log").read_text()
    assert not list(logs.glob("*.cancel"))
    assert not (repo / "out").exists() and not (repo / "dvc.lock").exists()
