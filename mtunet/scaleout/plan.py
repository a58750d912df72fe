"""``mtunet study plan``: the study's stages, their status and how long the stale ones take.

Starts nothing and needs no Ray: the stages and their status come from DVC
(:class:`~mtunet.scaleout.graph.StudyRepo`, staleness propagated downstream), the times from
the study's own records (:class:`~mtunet.scaleout.estimate.Durations`) and the wall time from
list scheduling on the cluster described (:func:`~mtunet.scaleout.estimate.schedule`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtunet.config import load_params, train_section
from mtunet.scaleout.estimate import Durations, Job, Schedule, format_seconds, schedule
from mtunet.scaleout.graph import StageInfo, StudyRepo, stale_stages
from mtunet.scaleout.resources import ResourcesConfig


@dataclass(frozen=True)
class PlanRow:
    """One stage of the plan.

    Attributes:
        stage: The stage.
        status: ``"up to date"``, ``"stale: <why>"`` (DVC's reason) or ``"stale: upstream"``.
        seconds: Its estimated time (None: unknown), and ``source``: where that comes from.
        gpus, cpus: What it reserves on the cluster planned for.
    """

    stage: StageInfo
    status: str
    seconds: float | None
    source: str
    gpus: float
    cpus: int

    @property
    def stale(self) -> bool:
        return self.status != "up to date"


@dataclass(frozen=True)
class Plan:
    """The rows in ``dvc.yaml`` order, the cluster planned for and the schedule."""

    rows: list[PlanRow]
    gpus: int
    cpus: int
    schedule: Schedule


def train_epochs(params: Mapping[str, Any]) -> dict[str, int]:
    """Epochs of each dataset's training runs (``train`` with its preset filled in)."""
    from mtunet.training.config import TrainConfig

    out = {}
    for dataset in params.get("datasets") or {}:
        section = {k: v for k, v in train_section(params, dataset).items() if k != "seed"}
        cfg = TrainConfig.from_dict(section, "train").resolved()
        out[str(dataset)] = int(cfg.epochs)  # type: ignore[arg-type]
    return out


def make_plan(
    root: str | os.PathLike[str],
    gpus: int,
    cpus: int,
    epoch_seconds: Mapping[str, float] | None = None,
) -> Plan:
    """The plan of the study in the DVC repository ``root`` on ``gpus`` GPUs and ``cpus``
    CPUs (``gpus`` 0: every run on the CPU).

    Raises:
        ValueError: Bad params, or a stage that asks for more than the cluster has.
    """
    repo = StudyRepo(root)
    try:
        stages = repo.stages()
        changed = repo.status()
    finally:
        repo.close()
    params = load_params(repo.root / "params.yaml")
    resources = ResourcesConfig.from_params(params)
    durations = Durations(repo.root, train_epochs(params), epoch_seconds)
    stale = stale_stages(stages, changed)
    rows = []
    for name, info in stages.items():
        res = resources.for_stage(name, gpus)
        status = "up to date"
        if name in changed:
            status = f"stale: {changed[name]}"
        elif name in stale:
            status = "stale: upstream"
        seconds, source = durations.seconds(name, info.kind) if name in stale else (None, "")
        rows.append(PlanRow(info, status, seconds, source, res.gpus, res.cpus))
    jobs = [Job(r.stage.name, r.seconds, r.gpus, r.cpus, r.stage.upstream) for r in rows if r.stale]
    return Plan(rows, gpus, cpus, schedule(jobs, gpus, cpus))


def _needs(upstream: tuple[str, ...]) -> str:
    if not upstream:
        return "-"
    if len(upstream) <= 2:
        return ", ".join(upstream)
    return f"{upstream[0]} +{len(upstream) - 1} more"


def format_plan(plan: Plan) -> str:
    """The plan as the terminal shows it: one line per stage, then the estimate."""
    header = ("stage", "status", "needs", "reserves", "time")
    lines = [header]
    for r in plan.rows:
        reserves = f"{r.gpus:g} GPU + {r.cpus} CPU" if r.gpus else f"{r.cpus} CPU"
        if not r.stale:
            time = "-"
        elif r.seconds is None:
            time = "unknown"
        else:
            time = f"{format_seconds(r.seconds)} ({r.source})"
        lines.append((r.stage.name, r.status, _needs(r.stage.upstream), reserves, time))
    widths = [min(60, max(len(line[i]) for line in lines)) for i in range(len(header) - 1)]
    text = [
        "  ".join(f"{c[:60]:<{w}}" for c, w in zip(line[:-1], widths, strict=True))
        + "  "
        + line[-1]
        for line in lines
    ]
    stale = [r for r in plan.rows if r.stale]
    s = plan.schedule
    cluster = f"{plan.gpus} GPU(s) and {plan.cpus} CPUs" if plan.gpus else f"{plan.cpus} CPUs"
    text.append("")
    text.append(
        f"{len(plan.rows)} stages, {len(stale)} stale, {len(plan.rows) - len(stale)} up to date."
    )
    if stale:
        text.append(
            f"Estimate on {cluster}: {format_seconds(s.wall_seconds)} wall time"
            + (f", {s.gpu_seconds / 3600:.1f} GPU-hours of work" if plan.gpus else "")
            + " (stages started in dvc.yaml order as their inputs and resources allow)."
        )
        if s.unknown:
            shown = ", ".join(s.unknown[:4]) + (
                f" +{len(s.unknown) - 4} more" if len(s.unknown) > 4 else ""
            )
            text.append(
                f"{len(s.unknown)} stage(s) have no measured or given time and count as 0 s: "
                f"{shown} (give --epoch-seconds for training runs)."
            )
    return "\n".join(text)


def run_plan(
    root: Path, gpus: int, cpus: int, epoch_seconds: Mapping[str, float] | None = None
) -> str:
    """What ``mtunet study plan`` prints."""
    return format_plan(make_plan(root, gpus, cpus, epoch_seconds))
