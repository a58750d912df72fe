"""How long the stale stages take on a cluster: per-stage times and list scheduling.

Times (:class:`Durations`):

* a training run: its epochs times a per-epoch time: the one the user gives
  (``--epoch-seconds``, for every dataset or per dataset), else the median per-epoch time
  of the finished runs of the same dataset and variant (every seed's ``train.json``
  history), else of the same dataset's other variants;
* any other stage: its own last successful run under ``mtunet study run``
  (``logs/study/<stage>.json``), else the median of the stages of the same name before
  ``@`` (``evaluate``, ``compare``, ...); unknown times count as 0 and are listed.

Scheduling (:func:`schedule`): the stages are started in ``dvc.yaml`` order as soon as their
upstream stages have finished and their resources fit, which is what Ray does with the
tasks the launcher submits: ``gpus`` GPUs of capacity 1 each, a fractional request packed
onto a GPU with room left (first fit), a whole-number request taking whole GPUs, and
``cpus`` CPUs shared by all stages. The wall time is when the last stage ends. Packed runs
are assumed to keep their measured speed (they do only when the GPU had room to spare), and
a resumed run is counted from its first epoch.
"""

from __future__ import annotations

import heapq
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_EPS = 1e-9


@dataclass(frozen=True)
class Job:
    """One stage to schedule.

    Attributes:
        name: Stage name.
        seconds: How long it runs, or None when unknown (counted as 0).
        gpus: GPUs it reserves (a fraction in (0, 1], a whole number, or 0).
        cpus: CPUs it reserves.
        upstream: Stages of the same schedule it must wait for.
    """

    name: str
    seconds: float | None
    gpus: float
    cpus: int
    upstream: tuple[str, ...] = ()


@dataclass(frozen=True)
class Schedule:
    """A simulated run: when each stage starts and ends, in seconds from the start."""

    wall_seconds: float
    start: dict[str, float]
    end: dict[str, float]
    gpu_seconds: float
    unknown: tuple[str, ...]


def _fit(job: Job, free: list[float]) -> list[tuple[int, float]] | None:
    """Where the job's GPUs go on GPUs with ``free`` capacity, or None when it does not fit."""
    if job.gpus <= 0:
        return []
    if job.gpus <= 1:
        for i, room in enumerate(free):
            if room + _EPS >= job.gpus:
                return [(i, job.gpus)]
        return None
    whole = [i for i, room in enumerate(free) if room + _EPS >= 1.0]
    need = round(job.gpus)
    return [(i, 1.0) for i in whole[:need]] if len(whole) >= need else None


def schedule(jobs: Sequence[Job], gpus: int, cpus: int) -> Schedule:
    """List-schedule ``jobs`` (in their order) on ``gpus`` GPUs and ``cpus`` CPUs.

    Raises:
        ValueError: A job that could never start (more GPUs or CPUs than there are), or an
            upstream stage that is not among the jobs and not finished (a cycle).
    """
    if gpus < 0 or cpus < 1:
        raise ValueError(f"schedule: need gpus >= 0 and cpus >= 1, got {gpus} and {cpus}")
    names = {j.name for j in jobs}
    for job in jobs:
        if job.cpus > cpus:
            raise ValueError(f"{job.name}: asks for {job.cpus} CPUs, the cluster has {cpus}")
        if job.gpus > 0 and _fit(job, [1.0] * gpus) is None:
            raise ValueError(f"{job.name}: asks for {job.gpus} GPUs, the cluster has {gpus}")
    free_gpu, free_cpu = [1.0] * gpus, cpus
    pending = list(jobs)
    done: set[str] = set()
    running: list[tuple[float, int, Job, list[tuple[int, float]]]] = []
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    now, counter = 0.0, 0
    while pending or running:
        for job in list(pending):
            if any(u in names and u not in done for u in job.upstream) or job.cpus > free_cpu:
                continue
            place = _fit(job, free_gpu)
            if place is None:
                continue
            for i, share in place:
                free_gpu[i] -= share
            free_cpu -= job.cpus
            pending.remove(job)
            start[job.name] = now
            counter += 1
            heapq.heappush(running, (now + (job.seconds or 0.0), counter, job, place))
        if not running:
            raise ValueError(f"schedule: {pending[0].name} waits for a stage that never runs")
        now, _, job, place = heapq.heappop(running)
        finished = [(job, place)]
        while running and running[0][0] <= now + _EPS:
            _, _, other, other_place = heapq.heappop(running)
            finished.append((other, other_place))
        for fjob, fplace in finished:
            for i, share in fplace:
                free_gpu[i] += share
            free_cpu += fjob.cpus
            done.add(fjob.name)
            end[fjob.name] = now
    return Schedule(
        wall_seconds=max(end.values(), default=0.0),
        start=start,
        end=end,
        gpu_seconds=sum((j.seconds or 0.0) * j.gpus for j in jobs),
        unknown=tuple(j.name for j in jobs if j.seconds is None),
    )


def parse_run(name: str) -> tuple[str, str, str] | None:
    """``(dataset, variant, seed)`` of a train or evaluate stage name, else None."""
    if "@" not in name:
        return None
    key = name.split("@", 1)[1]
    dataset, _, rest = key.partition("-")
    variant, _, seed = rest.rpartition("-")
    return (dataset, variant, seed) if dataset and variant and seed.isdigit() else None


def _epoch_times(train_json: Path) -> list[float]:
    try:
        history = json.loads(train_json.read_text(encoding="utf-8")).get("history") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [float(h["train_seconds"]) for h in history if h.get("train_seconds")]


class Durations:
    """Per-stage time estimates from a study's files (see the module docstring).

    Args:
        root: The study root.
        epochs: Epochs of every training run, or dataset -> epochs (the resolved
            ``train.epochs``).
        epoch_seconds: Given per-epoch times: dataset -> seconds, ``"*"`` for every dataset.
        records: Folder of the launcher's per-stage records (``logs/study``).
    """

    def __init__(
        self,
        root: Path,
        epochs: int | Mapping[str, int],
        epoch_seconds: Mapping[str, float] | None = None,
        records: Path | None = None,
    ) -> None:
        self.root, self.epochs = root, epochs
        self.given = dict(epoch_seconds or {})
        self.records = records if records is not None else root / "logs" / "study"
        self._stage_seconds = self._read_records()

    def _read_records(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if not self.records.is_dir():
            return out
        for path in sorted(self.records.glob("*.json")):
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
                done = rec.get("ended") is not None and rec.get("started") is not None
                if rec.get("returncode") == 0 and done:
                    out[str(rec["stage"])] = float(rec["ended"]) - float(rec["started"])
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
        return out

    def epoch_seconds(self, dataset: str, variant: str) -> tuple[float | None, str]:
        """A training run's per-epoch time and where it comes from."""
        if dataset in self.given:
            return self.given[dataset], "given"
        if "*" in self.given:
            return self.given["*"], "given"
        models = self.root / "models" / dataset
        same = [t for p in models.glob(f"{variant}/seed*/train.json") for t in _epoch_times(p)]
        if same:
            return statistics.median(same), "measured"
        other = [t for p in models.glob("*/seed*/train.json") for t in _epoch_times(p)]
        if other:
            return statistics.median(other), f"measured on other {dataset} runs"
        return None, "unknown"

    def seconds(self, name: str, kind: str) -> tuple[float | None, str]:
        """A stage's time and how it was found (``"given"``, ``"measured"``, ...)."""
        run = parse_run(name)
        if kind == "train" and run is not None:
            per_epoch, source = self.epoch_seconds(run[0], run[1])
            if per_epoch is None:
                return None, source
            n = self.epochs if isinstance(self.epochs, int) else self.epochs[run[0]]
            return n * per_epoch, f"{n} x {per_epoch:.3g} s, {source}"
        if name in self._stage_seconds:
            return self._stage_seconds[name], "measured"
        group = name.split("@", 1)[0]
        alike = [s for n, s in self._stage_seconds.items() if n.split("@", 1)[0] == group]
        if alike:
            return statistics.median(alike), f"measured on other {group} stages"
        return None, "unknown"


def format_seconds(seconds: float) -> str:
    """``1 h 02 min``, ``12 min 05 s`` or ``42 s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"
