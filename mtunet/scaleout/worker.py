"""What a Ray task runs on its node: one stage's command, in its own process group and log.

The command runs as ``dvc repro`` runs it (the user's shell, without its start-up files, in
the stage's folder, with ``DVC_ROOT`` and ``DVC_STAGE`` set), plus the run's resources: the
GPUs Ray gave the task (``CUDA_VISIBLE_DEVICES``, empty for a run without GPUs) and its
threads (:meth:`~mtunet.scaleout.resources.RunResources.environment`). Its stdout and stderr go
to ``logs/study/<stage>.log``; ``logs/study/<stage>.json`` says where and when it ran.

The command gets a process group of its own. On Ctrl-C or SIGTERM the launcher writes the
stage's ``logs/study/<stage>.cancel`` file (every node shares the checkout); the task sees it
within half a second, terminates the whole group, DataLoader workers included, and returns
its record as ``cancelled``. A task still queued when the file appears returns at once
without running anything. Ray's own cancellation (``ray.cancel``) is left to the launcher's
last resort: in Ray 2.60 it can race a task's reply and abort the launcher. On Linux the
command also dies with the Ray worker that started it, should that worker be killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mtunet.fileio import write_json

#: Where the stages' logs and records go, relative to the repository root.
LOG_DIR = Path("logs") / "study"
#: Seconds a cancelled command's process group gets between SIGTERM and SIGKILL.
KILL_GRACE_SECONDS = 10.0
#: The ``returncode`` of a run stopped by its cancel file or by Ray.
CANCELLED = "cancelled"


@dataclass(frozen=True)
class StageCommand:
    """One stage as the launcher hands it to a task.

    Attributes:
        name: The stage's DVC address.
        commands: Its ``cmd`` lines, run one after another until one fails.
        cwd: The folder they run in.
        env: Variables added to the node's environment.
        gpus: GPUs the task reserved (0: the command sees none).
        log: Its log file.
        record: Its JSON record (host, process group, GPUs, times, exit status).
        cancel: A file whose appearance asks the task to stop its command (empty: none).
    """

    name: str
    commands: tuple[str, ...]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    gpus: float = 0.0
    log: str = ""
    record: str = ""
    cancel: str = ""

    def cancel_requested(self) -> bool:
        """Whether the launcher has asked this run to stop."""
        return bool(self.cancel) and os.path.exists(self.cancel)


def shell_argv(command: str) -> list[str]:
    """The command in the user's shell without its start-up files, as ``dvc repro`` runs it."""
    shell = os.environ.get("SHELL") or "/bin/sh"
    name = os.path.basename(shell).lower()
    options = {"bash": ["--noprofile", "--norc"], "zsh": ["--no-rcs"]}.get(name, [])
    return [shell, *options, "-c", command]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL the command when the Ray worker that started it dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def kill_group(
    pgid: int, grace: float = KILL_GRACE_SECONDS, leader: subprocess.Popen[Any] | None = None
) -> None:
    """SIGTERM the process group ``pgid``, then SIGKILL whatever is left after ``grace`` s.

    ``leader``, the group's first process when it is our child, is reaped as it ends: a
    zombie still counts as a member and would hold the wait for the whole grace period.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _wait(proc: subprocess.Popen[Any], cmd: StageCommand) -> int | None:
    """The command's exit status, or None once its cancel file appears. It waits in short
    naps, to look for that file and because Ray cancels a task by raising KeyboardInterrupt
    between two Python instructions, which one long wait would delay until the command ends."""
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if cmd.cancel_requested():
                return None


def _stop(proc: subprocess.Popen[Any], log: TextIO, why: str) -> None:
    """Kill the command's process group, saying so in its log."""
    # Said before the kill: a worker force-cancelled during the grace period leaves this
    # line in the log all the same.
    log.write(f"=== cancelled ({why}): killing the command's process group\n")
    log.flush()
    kill_group(proc.pid, leader=proc)
    with contextlib.suppress(Exception):
        proc.wait(timeout=1)
    log.write("=== the command's process group was killed\n")
    log.flush()


def stage_environment(cmd: StageCommand) -> dict[str, str]:
    """The command's environment: this node's, the stage's variables and its GPUs."""
    env = {**os.environ, **cmd.env}
    if cmd.gpus <= 0:
        # Not even a CPU stage on a GPU node may take a GPU it did not reserve.
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def run_stage(cmd: StageCommand, attempt: int = 1) -> dict[str, Any]:
    """Run the stage's commands; returns its record (``returncode`` 0 on success,
    :data:`CANCELLED` when its cancel file appeared).

    Raises:
        KeyboardInterrupt: Ray cancelled the task; the command's process group is gone.
    """
    env = stage_environment(cmd)
    record: dict[str, Any] = {
        "stage": cmd.name,
        "attempt": attempt,
        "host": socket.gethostname(),
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
        "threads": env.get("OMP_NUM_THREADS"),
        "started": time.time(),
        "pgid": None,
        "ended": None,
        "returncode": None,
        "log": cmd.log,
    }
    Path(cmd.log).parent.mkdir(parents=True, exist_ok=True)
    with open(cmd.log, "a", encoding="utf-8") as log:
        log.write(
            f"=== {cmd.name}: attempt {attempt} on {record['host']}, "
            f"CUDA_VISIBLE_DEVICES={record['cuda_visible_devices']!r}, "
            f"{record['threads']} thread(s), {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        )
        log.flush()
        returncode: int | str = 0
        for command in cmd.commands:
            if cmd.cancel_requested():
                returncode = CANCELLED
                log.write("=== cancelled before it started\n")
                break
            log.write(f"> {command}\n")
            log.flush()
            proc = subprocess.Popen(
                shell_argv(command),
                cwd=cmd.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            record["pgid"] = proc.pid
            if cmd.record:
                write_json(cmd.record, record)
            try:
                code = _wait(proc, cmd)
            except BaseException:
                _stop(proc, log, "by Ray")
                record.update(ended=time.time(), returncode=CANCELLED)
                if cmd.record:
                    write_json(cmd.record, record)
                raise
            if code is None:
                _stop(proc, log, "by the launcher")
                returncode = CANCELLED
                break
            returncode = code
            if returncode != 0:
                break
        record.update(ended=time.time(), returncode=returncode)
        log.write(f"=== exit status {returncode}\n")
    if cmd.record:
        write_json(cmd.record, record)
    return record


def probe(root: str, token_path: str, token: str, cache_dir: str | None) -> list[str]:
    """On one node: what keeps it from running the study's stages (empty when nothing).

    Checks that the node sees the same checkout (the launcher's token file with its
    content) and the DVC cache (the workspace's outputs may be links into it), and that
    ``python`` is on its PATH and imports ``mtunet``.
    """
    problems: list[str] = []
    host = socket.gethostname()
    try:
        seen = Path(token_path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        return [f"{host}: cannot read {token_path} ({exc}): {root} is not shared with it"]
    if seen != token:
        problems.append(f"{host}: {token_path} holds another launch's token: another checkout")
    if cache_dir and not Path(cache_dir).is_dir():
        problems.append(f"{host}: the DVC cache {cache_dir} is not there: share it with the node")
    proc = subprocess.run(
        shell_argv("python -c 'import mtunet, sys; print(mtunet.__file__)'"),
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        problems.append(
            f"{host}: `python -c 'import mtunet'` fails in {root}: "
            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
        )
    return problems
