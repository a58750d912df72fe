"""How a study run stops: the task's cancel file, the process group's kill, the launcher's
fallback to Ray's cancel. Ray itself is faked here; ``test_study_run.py`` runs it."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from test_study_run import _alive

from mtunet.scaleout.runner import cancel_tasks
from mtunet.scaleout.worker import CANCELLED, StageCommand, kill_group, run_stage


def _sleeper(tmp_path: Path) -> StageCommand:
    pid = tmp_path / "pid"
    # pid and process group: a shell that forks instead of exec'ing the last command (CI's
    # did) leaves the shell, not this process, as the group's leader.
    code = (
        f"import os, time; open({str(pid)!r}, 'w').write(f'{{os.getpid()}} {{os.getpgrp()}}'); "
        "time.sleep(600)"
    )
    return StageCommand(
        name="train@x",
        commands=(f'{sys.executable} -c "{code}"', f"touch {tmp_path / 'second'}"),
        cwd=str(tmp_path),
        log=str(tmp_path / "x.log"),
        record=str(tmp_path / "x.json"),
        cancel=str(tmp_path / "x.cancel"),
    )


def test_the_cancel_file_stops_the_command_and_the_task_returns(tmp_path: Path) -> None:
    cmd = _sleeper(tmp_path)
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(run_stage(cmd)))
    worker.start()
    pid_file = tmp_path / "pid"
    deadline = time.monotonic() + 60
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline and worker.is_alive()
        time.sleep(0.1)
    pid, pgid = map(int, pid_file.read_text().split())
    Path(cmd.cancel).touch()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert result["returncode"] == CANCELLED and result["pgid"] == pgid
    assert not _alive(pid)
    assert not (tmp_path / "second").exists()  # the later command never ran
    log = Path(cmd.log).read_text()
    assert "=== cancelled (by the launcher): killing the command's process group" in log
    assert f"=== exit status {CANCELLED}" in log


def test_a_task_cancelled_before_it_starts_runs_nothing(tmp_path: Path) -> None:
    cmd = _sleeper(tmp_path)
    Path(cmd.cancel).touch()
    record = run_stage(cmd)
    assert record["returncode"] == CANCELLED and record["pgid"] is None
    assert not (tmp_path / "pid").exists()
    assert "cancelled before it started" in Path(cmd.log).read_text()


def test_kill_group_reaps_its_leader_instead_of_waiting_out_the_grace(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    time.sleep(0.5)
    # Without reaping, the zombie leader keeps the group "alive" for the whole grace period.
    killer = threading.Thread(target=kill_group, args=(proc.pid, 600.0, proc))
    killer.start()
    killer.join(timeout=60)
    assert not killer.is_alive()
    assert proc.returncode == -signal.SIGTERM


class _Run:
    def __init__(self, cmd: StageCommand) -> None:
        self.cmd = cmd


class FakeRay:
    """Tasks ``a`` and ``b``: ``a`` returns once its cancel file is there, ``b`` never does."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.cancelled: list[tuple[str, bool]] = []
        self.seen_files: list[str] = []

    def wait(self, refs: list[str], num_returns: int, timeout: float) -> Any:
        self.seen_files = sorted(p.name for p in self.tmp_path.glob("*.cancel"))
        ready = [r for r in refs if r == "a"]
        return ready, [r for r in refs if r not in ready]

    def cancel(self, ref: str, force: bool = False) -> None:
        self.cancelled.append((ref, force))


def test_cancel_tasks_asks_through_files_and_leaves_ray_cancel_to_stragglers(
    tmp_path: Path,
) -> None:
    running = {
        name: _Run(
            StageCommand(
                name=name,
                commands=("true",),
                cwd=str(tmp_path),
                log=str(tmp_path / f"{name}.log"),
                record=str(tmp_path / f"{name}.json"),
                cancel=str(tmp_path / f"{name}.cancel"),
            )
        )
        for name in ("a", "b")
    }
    ray = FakeRay(tmp_path)
    cancel_tasks(ray, running, wait=0.0)
    assert ray.seen_files == ["a.cancel", "b.cancel"]
    # Ray's cancel only for the task that did not return, and by force: a graceful cancel
    # of a task that is returning is the race that aborted the launcher.
    assert ray.cancelled == [("b", True)]
    assert not list(tmp_path.glob("*.cancel"))
