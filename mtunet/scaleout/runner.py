"""``mtunet study run``: the study's stale stages executed as Ray tasks, recorded by DVC.

The launcher (this process) reads the stage graph and status from DVC
(:class:`~mtunet.scaleout.graph.StudyRepo`), starts or joins Ray, checks that every node sees
the checkout, and submits each stale stage as a task once its upstream stages are done,
asking Ray for the stage's resources (:mod:`~mtunet.scaleout.resources`). Ray runs as many
at once as the cluster holds. Each task runs the stage's own ``cmd`` from ``dvc.yaml``
(:func:`~mtunet.scaleout.worker.run_stage`). When a command exits 0 the launcher records the
stage with DVC, one stage at a time; nothing else is ever recorded, so a failed, killed or
cancelled run leaves only outputs that DVC and the later stages refuse, and the next launch
runs what is still stale (a training resumes from its ``last.pt``).

Before starting a stage the launcher asks DVC again whether it is out of date, as
``dvc repro`` does when a stage's turn comes, and removes its old outputs. A failed command
is retried up to ``max_retries`` times; then its downstream stages are not run and the
others go on. Ctrl-C or SIGTERM stops the submitted tasks through their cancel files (each
kills its command's process group; see :mod:`~mtunet.scaleout.worker`) and exits with
status 130.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mtunet.config import load_params
from mtunet.fileio import read_json
from mtunet.scaleout.cluster import (
    check_cluster,
    check_shared_filesystem,
    import_ray,
    start_ray,
)
from mtunet.scaleout.estimate import Durations, Job, format_seconds, schedule
from mtunet.scaleout.graph import StudyRepo, stale_stages
from mtunet.scaleout.plan import train_epochs
from mtunet.scaleout.progress import ProgressView
from mtunet.scaleout.resources import ResourcesConfig, RunResources
from mtunet.scaleout.worker import (
    KILL_GRACE_SECONDS,
    LOG_DIR,
    StageCommand,
    kill_group,
    run_stage,
)

#: Exit status after Ctrl-C or SIGTERM.
INTERRUPTED = 130


class StopFlag:
    """Set by Ctrl-C (SIGINT) or SIGTERM; the launch loop looks at it every second, so a
    signal never cuts a DVC record in half (nor Ray's own calls)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def set(self, signum: int, frame: Any = None) -> None:
        self.signum = signum


def cancel_tasks(ray: Any, running: dict[Any, Any], wait: float | None = None) -> None:
    """Stop the tasks running stages, and those still queued: write each stage's cancel
    file and wait for the tasks to return (each kills its command's process group, a
    queued one returns without starting it). A task not back within ``wait`` seconds (a
    node that lost the checkout, a hung worker) is cancelled by Ray, by force, and a
    command it left on this node has its process group killed from here."""
    if wait is None:
        wait = KILL_GRACE_SECONDS + 20.0
    for run in running.values():
        if run.cmd.cancel:
            with contextlib.suppress(OSError):
                Path(run.cmd.cancel).touch()
    refs = list(running)
    left = refs
    with contextlib.suppress(Exception):
        _, left = ray.wait(refs, num_returns=len(refs), timeout=wait)
    # Only a task that did not return: Ray 2.60's cancel can race a task's reply and abort
    # the launcher ("Tried to complete task that was not pending").
    for ref in left:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)
    host = socket.gethostname()
    for ref in left:
        run = running[ref]
        try:
            rec = read_json(run.cmd.record)
        except (OSError, ValueError):
            continue
        if rec.get("host") == host and rec.get("pgid") and rec.get("returncode") is None:
            kill_group(int(rec["pgid"]), grace=2.0)
            with contextlib.suppress(OSError), open(run.cmd.log, "a", encoding="utf-8") as log:
                log.write("=== cancelled: the launcher killed the command's process group\n")
    for run in running.values():
        if run.cmd.cancel:
            Path(run.cmd.cancel).unlink(missing_ok=True)


@dataclass
class _Running:
    name: str
    attempt: int
    submitted: float
    cmd: StageCommand


class Launch:
    """One launch: the stale stages, what runs, what finished and what failed."""

    def __init__(
        self,
        ray: Any,
        repo: StudyRepo,
        resources: ResourcesConfig,
        epochs: Mapping[str, int],
        max_retries: int,
        stream: TextIO,
    ) -> None:
        self.ray, self.repo, self.resources = ray, repo, resources
        self.root = repo.root
        self.epochs, self.max_retries = epochs, max_retries
        self.stages = repo.stages()
        stale = stale_stages(self.stages, repo.status())
        self.pending = [n for n in self.stages if n in stale]
        self.finished: set[str] = set()
        self.failed: dict[str, str] = {}
        self.blocked: dict[str, str] = {}
        self.skipped: set[str] = set()
        self.running: dict[Any, _Running] = {}
        self.started: dict[str, float] = {}
        cluster = ray.cluster_resources()
        self.gpus, self.cpus = float(cluster.get("GPU", 0)), int(cluster.get("CPU", 1))
        self.view = ProgressView(len(self.pending), stream=stream)
        self.task = ray.remote(run_stage)

    # ------------------------------------------------------------------ scheduling

    def _request(self, name: str) -> RunResources:
        return self.resources.for_stage(name, self.gpus)

    def _submit(self, name: str, attempt: int) -> None:
        res = self._request(name)
        env = {**self.repo.prepare(name), **res.environment()}
        info = self.stages[name]
        log_dir = self.root / LOG_DIR
        cmd = StageCommand(
            name=name,
            commands=info.commands,
            cwd=info.wdir,
            env=env,
            gpus=res.gpus,
            log=str(log_dir / f"{name}.log"),
            record=str(log_dir / f"{name}.json"),
            cancel=str(log_dir / f"{name}.cancel"),
        )
        Path(cmd.record).unlink(missing_ok=True)
        Path(cmd.cancel).unlink(missing_ok=True)
        task = self.task.options(name=name, num_cpus=res.cpus, num_gpus=res.gpus, max_retries=0)
        self.running[task.remote(cmd, attempt)] = _Running(name, attempt, time.time(), cmd)

    def _dispatch(self) -> None:
        """Start every pending stage whose upstream stages are done."""
        for name in list(self.pending):
            upstream = [u for u in self.stages[name].upstream if u not in self.finished]
            lost = [u for u in upstream if u in self.failed or u in self.blocked]
            if lost:
                self.pending.remove(name)
                self.blocked[name] = lost[0]
                self.view.failed += 1
                continue
            if any(u in self.pending or self._is_running(u) for u in upstream):
                continue
            self.pending.remove(name)
            if not self.stages[name].commands or not self.repo.changed(name):
                if self.stages[name].commands:
                    self.skipped.add(name)
                else:  # a data source (.dvc file) that changed: record it, as dvc repro does
                    self.repo.record(name)
                self.finished.add(name)
                self.view.done += 1
                self._show(f"up to date: {name}")
                continue
            self._submit(name, 1)

    def _is_running(self, name: str) -> bool:
        return any(r.name == name for r in self.running.values())

    def _notice_starts(self) -> None:
        """Stages whose command started since the last look (their record appeared)."""
        for run in self.running.values():
            if run.name not in self.started and Path(run.cmd.record).is_file():
                self.started[run.name] = time.time()
                self.view.running += 1
                rec = read_json(run.cmd.record)
                gpus = rec.get("cuda_visible_devices")
                where = f" on {rec.get('host')}" + (f", GPU {gpus}" if gpus else "")
                self._show(f"started {run.name}{where} (attempt {run.attempt})")

    def _complete(self, ref: Any) -> None:
        run = self.running.pop(ref)
        if run.name in self.started:
            self.view.running -= 1
        began = self.started.pop(run.name, run.submitted)
        try:
            returncode: Any = self.ray.get(ref)["returncode"]
            reason = f"exit status {returncode}"
        except Exception as exc:  # the worker died, was killed, or the node was lost
            returncode, reason = None, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        if returncode == 0:
            try:
                self.repo.record(run.name)
            except Exception as exc:  # e.g. an output the command did not write
                returncode, reason = None, f"not recorded by DVC: {exc}"
        took = format_seconds(time.time() - began)
        if returncode == 0:
            self.finished.add(run.name)
            self.view.done += 1
            self._show(f"finished {run.name} ({took})")
        elif run.attempt <= self.max_retries:
            self._show(f"{run.name} failed ({reason}), retry {run.attempt}/{self.max_retries}")
            self._submit(run.name, run.attempt + 1)
        else:
            self.failed[run.name] = f"{reason} after {run.attempt} attempt(s); log: {run.cmd.log}"
            self.view.failed += 1
            self._show(f"FAILED {run.name}: {reason}; log: {run.cmd.log}")

    # ------------------------------------------------------------------ progress

    def eta(self) -> tuple[float | None, bool]:
        """Seconds left by list scheduling of the remaining stages, and whether some stage's
        time is unknown (the ETA is then a lower bound)."""
        durations = Durations(self.root, self.epochs)
        now, jobs = time.time(), []
        for run in self.running.values():
            seconds, _ = durations.seconds(run.name, self.stages[run.name].kind)
            if seconds is not None:
                seconds = max(0.0, seconds - (now - self.started.get(run.name, now)))
            res = self._request(run.name)
            jobs.append(Job(run.name, seconds, res.gpus, res.cpus))
        for name in self.pending:
            res = self._request(name)
            seconds, _ = durations.seconds(name, self.stages[name].kind)
            jobs.append(Job(name, seconds, res.gpus, res.cpus, self.stages[name].upstream))
        if not jobs:
            return 0.0, False
        try:
            sched = schedule(jobs, round(self.gpus), max(self.cpus, 1))
        except ValueError:
            return None, False
        return sched.wall_seconds, bool(sched.unknown)

    def _show(self, message: str) -> None:
        seconds, partial = self.eta()
        self.view.show(message, seconds, partial)

    # ------------------------------------------------------------------ the launch

    def run(self, stop: StopFlag) -> int:
        """Run the stale stages until done or ``stop`` is set; the exit status (0: all
        recorded, 1: some failed, :data:`INTERRUPTED`)."""
        if not self.pending:
            print("Every stage is up to date: nothing to run.", file=self.view.stream)
            return 0
        self._show(f"{len(self.pending)} stale stage(s) to run on {self._cluster_text()}")
        while stop.signum is None:
            self._dispatch()
            if not self.running:
                return self._summary()
            ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=1.0)
            self._notice_starts()
            for ref in ready:
                self._complete(ref)
        self.cancel(signal.Signals(stop.signum).name)
        return INTERRUPTED

    def _cluster_text(self) -> str:
        gpus = f"{self.gpus:g} GPU(s), " if self.gpus else "no GPU (CPU runs), "
        return f"{gpus}{self.cpus} CPU(s); logs in {LOG_DIR}/"

    def cancel(self, why: str) -> None:
        """Cancel the running tasks (each kills its command's process group) and say so."""
        names = sorted(r.name for r in self.running.values())
        cancel_tasks(self.ray, self.running)
        self.running.clear()
        print(
            f"Interrupted ({why}): cancelled {len(names)} submitted stage(s) "
            f"({', '.join(names) or 'none'}); none of them was recorded. Run "
            "`mtunet study run` again to go on (trainings resume from last.pt).",
            file=self.view.stream,
            flush=True,
        )

    def _summary(self) -> int:
        out = self.view.stream
        ran = len(self.finished) - len(self.skipped)
        print(
            f"Done: {ran} stage(s) run and recorded, {len(self.skipped)} found up to date, "
            f"{len(self.failed)} failed, {len(self.blocked)} not run because an input failed.",
            file=out,
        )
        for name, why in self.failed.items():
            print(f"  failed: {name}: {why}", file=out)
        for name, cause in self.blocked.items():
            print(f"  not run: {name} (needs {cause})", file=out)
        if self.failed:
            print(f"Failed runs: {' '.join(self.failed)}", file=out, flush=True)
            return 1
        return 1 if self.blocked else 0


def run_study(
    root: str | os.PathLike[str] = ".",
    address: str = "local",
    num_cpus: int | None = None,
    num_gpus: float | None = None,
    max_retries: int = 0,
    stream: TextIO = sys.stdout,
) -> int:
    """``mtunet study run``; returns the exit status (0 all done, 1 failures, 130
    interrupted).

    Raises:
        RuntimeError: Ray is missing, the repository is locked, or a node does not share
            the checkout.
        ValueError: Bad params or options.
    """
    if max_retries < 0:
        raise ValueError(f"--max-retries: must be >= 0, got {max_retries}")
    ray = import_ray()
    # DVC's "Updating lock file" notes would interleave with the progress lines.
    logging.getLogger("dvc").setLevel(logging.WARNING)
    repo = StudyRepo(root)
    try:
        params = load_params(repo.root / "params.yaml")
        resources = ResourcesConfig.from_params(params)
        epochs = train_epochs(params)
        start_ray(ray, address, num_cpus, num_gpus)
        try:
            gpus = float(ray.cluster_resources().get("GPU", 0))
            check_cluster(ray, resources, gpus)
            check_shared_filesystem(ray, repo.root, repo.cache_dir())
            launch = Launch(ray, repo, resources, epochs, max_retries, stream)
            stop = StopFlag()
            previous = {s: signal.signal(s, stop.set) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                return launch.run(stop)
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        finally:
            ray.shutdown()
    finally:
        repo.close()
