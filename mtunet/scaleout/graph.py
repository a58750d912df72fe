"""The study's DVC stage graph: its stages, their status, and recording a finished stage.

Everything here goes through DVC's Python API (:class:`dvc.repo.Repo`, its ``index.graph``),
inside the repository lock, and only the launcher's own process calls it: the stage commands
themselves never touch DVC's records.

Staleness: DVC's status flags a stage whose own deps, params, command or outputs changed.
A stale training also makes its evaluation, the comparison and the report stale, so
:func:`stale_stages` adds every stage downstream of a stale one. ``dvc repro`` decides each
stage when its turn comes, after its upstream stages ran, and skips it when its inputs came
out unchanged; the launcher does the same (:meth:`StudyRepo.changed`, asked again right
before a stage starts), so the propagated set is what may run, an upper bound.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtunet.scaleout.resources import stage_kind


@dataclass(frozen=True)
class StageInfo:
    """One stage of the graph.

    Attributes:
        name: DVC's address, e.g. ``train@synapse-mtunet-1234``.
        commands: Its ``cmd`` lines (empty for a data source, a ``.dvc`` file).
        wdir: The folder its commands run in.
        upstream: The stages whose outputs it reads, in the graph's order.
        kind: ``"train"``, ``"evaluate"`` or ``"other"`` (:func:`stage_kind`).
    """

    name: str
    commands: tuple[str, ...]
    wdir: str
    upstream: tuple[str, ...]
    kind: str


def stale_stages(stages: Mapping[str, StageInfo], changed: Iterable[str]) -> set[str]:
    """``changed`` and every stage downstream of one of them."""
    stale = set(changed) & set(stages)
    for name in stages:  # topological order: upstream stages come first
        if name not in stale and any(u in stale for u in stages[name].upstream):
            stale.add(name)
    return stale


def describe_change(entries: list[Any]) -> str:
    """A short reason from one stage's ``dvc status`` entries."""
    parts: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            parts.append(entry)
            continue
        for what, items in dict(entry).items():
            if isinstance(items, Mapping) and items:
                names = sorted(items)
                state = sorted({str(v) for v in items.values()})
                shown = ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")
                parts.append(f"{what} ({'/'.join(state)}: {shown})")
            else:
                parts.append(str(what))
    return "; ".join(parts) or "changed"


class StudyRepo:
    """The DVC repository of the study, opened once by the launcher.

    Args:
        root: The repository root (the folder holding ``dvc.yaml`` and ``.dvc``).

    Raises:
        ValueError: ``root`` is not a DVC repository.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        from dvc.exceptions import NotDvcRepoError
        from dvc.repo import Repo

        try:
            self.repo = Repo(os.fspath(root))
        except NotDvcRepoError as exc:
            raise ValueError(f"{root}: not a DVC repository ({exc})") from exc
        self.root = Path(self.repo.root_dir)

    def close(self) -> None:
        """Release DVC's open files."""
        self.repo.close()

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        """DVC's repository lock, with an error that says who holds it; inside, the working
        folder is the root, so DVC names stages as ``dvc.yaml`` does (``train@a``, not
        ``../dvc.yaml:train@a``)."""
        from dvc.lock import LockError
        from dvc.repo import lock_repo

        cwd = os.getcwd()
        try:
            os.chdir(self.root)
            with lock_repo(self.repo):
                yield self.repo
        except LockError as exc:
            raise RuntimeError(
                f"{self.root}: the DVC repository is locked ({exc}); another `dvc` command "
                "or `mtunet study run` is working in it"
            ) from exc
        finally:
            os.chdir(cwd)

    def _stage(self, name: str) -> Any:
        for stage in self.repo.index.graph:
            if stage.addressing == name:
                return stage
        raise ValueError(f"{name}: no such stage in {self.root / 'dvc.yaml'}")

    def stages(self) -> dict[str, StageInfo]:
        """Every stage, upstream before downstream (``dvc.yaml`` order among equals).

        Frozen stages are left out, and a stage does not wait for a frozen one (as in
        ``dvc repro``).
        """
        import networkx as nx

        with self._locked() as repo:
            graph = repo.index.graph
            order = {s: i for i, s in enumerate(graph)}
            # DVC's edges point from a stage to the stages it depends on.
            topo = nx.lexicographical_topological_sort(graph.reverse(), key=lambda s: order[s])
            out: dict[str, StageInfo] = {}
            for stage in topo:
                if stage.frozen:
                    continue
                cmd = stage.cmd or []
                commands = tuple(cmd if isinstance(cmd, list) else str(cmd).splitlines())
                position = {n: i for i, n in enumerate(out)}
                upstream = sorted(
                    (u.addressing for u in graph.successors(stage) if not u.frozen),
                    key=position.__getitem__,
                )
                out[stage.addressing] = StageInfo(
                    name=stage.addressing,
                    commands=tuple(c for c in commands if c.strip()),
                    wdir=str(stage.wdir),
                    upstream=tuple(upstream),
                    kind=stage_kind(stage.addressing),
                )
            return out

    def status(self) -> dict[str, str]:
        """Stage name -> why DVC considers it changed, for the changed stages only
        (``"not run yet"`` for a stage ``dvc.lock`` does not know)."""
        from mtunet.config import load_yaml

        lock = self.root / "dvc.lock"
        known = set()
        if lock.is_file():
            known = set((load_yaml(lock.read_text(encoding="utf-8")) or {}).get("stages") or {})
        with self._locked() as repo:
            return {
                name: describe_change(list(entries)) if name in known else "not run yet"
                for name, entries in repo.status().items()
            }

    def changed(self, name: str) -> bool:
        """Whether ``name`` is out of date now (what ``dvc repro`` asks before running it)."""
        with self._locked():
            return bool(self._stage(name).changed())

    def prepare(self, name: str) -> dict[str, str]:
        """Remove the stage's outputs (not the persistent ones), as ``dvc repro`` does before
        running it, so nothing of an earlier run survives; return the variables DVC gives a
        stage's command (``DVC_ROOT``, ``DVC_STAGE``)."""
        from dvc.env import DVC_ROOT, DVC_STAGE

        with self._locked():
            stage = self._stage(name)
            stage.remove_outs(ignore_remove=False, force=False)
            return {DVC_ROOT: str(self.root), DVC_STAGE: name}

    def record(self, name: str) -> None:
        """Record a stage whose command succeeded, as ``dvc commit --force`` of that stage
        does (hashes of deps and outputs, outputs into the cache, the entry in ``dvc.lock``).

        The stage object is used rather than a ``dvc commit`` target, which DVC would parse
        as ``path:stage`` for a user model's name such as ``pkg.mod:build``.
        """
        with self._locked():
            stage = self._stage(name)
            stage.save()
            stage.commit()
            stage.dump(update_pipeline=False)

    def cache_dir(self) -> str | None:
        """The local DVC cache folder (None when the repository has none)."""
        path = getattr(self.repo.cache.local, "path", None)
        return str(path) if path else None
