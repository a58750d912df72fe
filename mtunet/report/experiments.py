"""All experiments of the repository, read from git (never through ``dvc``).

The report runs inside ``dvc repro`` / ``dvc exp run``, which hold the repository lock, so
experiments are read straight from git: the baseline is ``HEAD``; ``dvc exp`` runs are the
refs ``refs/exps/<sha[:2]>/<sha[2:]>/<name>`` (``sha`` = the commit they are based on); the
workspace holds the run being reported.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtunet.config import load_yaml

_EXP_REF = re.compile(r"^refs/exps/([0-9a-f]{2})/([0-9a-f]{38})/([^/]+)$")


@dataclass
class Experiment:
    """One experiment: its name, git revision, flattened params and metrics per dataset."""

    name: str
    kind: str  # "baseline" | "experiment" | "workspace"
    rev: str | None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    base_rev: str | None = None


def _git(repo: Path, *args: str) -> str | None:
    """stdout of a git command in ``repo``, or None when it fails (no repo, no such object)."""
    try:
        out = subprocess.run(
            ["git", "-C", os.fspath(repo), *args],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout


def git_show(repo: Path, rev: str, path: str) -> str | None:
    """The text of ``path`` at ``rev`` (``git show rev:path``), or None when absent."""
    return _git(repo, "show", f"{rev}:{path}")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to ``{"a.b.c": value}``; lists are kept as JSON strings for comparison."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, (list, tuple)):
        return {prefix: json.dumps(list(obj))}
    return {prefix: obj}


def params_diff(base: dict[str, Any], other: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Flattened keys whose value differs: ``{key: (baseline value, this value)}``."""
    missing = object()
    diff = {}
    for key in sorted(set(base) | set(other)):
        a, b = base.get(key, missing), other.get(key, missing)
        if a != b:
            diff[key] = (None if a is missing else a, None if b is missing else b)
    return diff


def _load_json_text(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _load_yaml_text(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = load_yaml(text)  # numbers as params.yaml's readers take them
    except yaml.YAMLError:
        return {}
    return flatten(value) if isinstance(value, dict) else {}


def _rel(repo: Path, path: Path) -> str:
    """``path`` relative to the repository root, with forward slashes (for ``git show``)."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(repo).resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(path).as_posix()


def collect_experiments(
    repo_dir: Path,
    datasets: list[str],
    metrics_dir: Path,
    params_path: Path,
    notes: list[str] | None = None,
) -> list[Experiment]:
    """Baseline (HEAD), every ``dvc exp`` ref, and the workspace, oldest experiment first.

    Args:
        repo_dir: Root of the git repository.
        datasets: Dataset names; metrics files are ``metrics_dir/<ds>.json``.
        metrics_dir: Folder of the metrics files (in the workspace and in git).
        params_path: ``params.yaml`` (in the workspace and in git).
        notes: Receives a line for anything missing (no git repo, no HEAD commit).

    Returns:
        Experiments; metrics for a dataset are None when that revision lacks the file.
    """
    repo = Path(repo_dir)
    notes = notes if notes is not None else []
    metrics_rel = {ds: _rel(repo, Path(metrics_dir) / f"{ds}.json") for ds in datasets}
    params_rel = _rel(repo, Path(params_path))
    exps: list[Experiment] = []

    head = _git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    head = head.strip() if head else None
    if head is None:
        notes.append("No git commit found: the experiment table shows the workspace only.")
    else:
        exps.append(
            Experiment(
                name="baseline (HEAD)",
                kind="baseline",
                rev=head,
                params=_load_yaml_text(git_show(repo, head, params_rel)),
                metrics={
                    ds: _load_json_text(git_show(repo, head, p)) for ds, p in metrics_rel.items()
                },
            )
        )
        listing = _git(
            repo,
            "for-each-ref",
            "--sort=committerdate",
            "--format=%(refname)%09%(objectname)",
            "refs/exps/",
        )
        for line in (listing or "").splitlines():
            ref, _, sha = line.partition("\t")
            match = _EXP_REF.match(ref)
            if not match:  # queue / executor bookkeeping refs
                continue
            exps.append(
                Experiment(
                    name=match.group(3),
                    kind="experiment",
                    rev=sha,
                    base_rev=match.group(1) + match.group(2),
                    params=_load_yaml_text(git_show(repo, sha, params_rel)),
                    metrics={
                        ds: _load_json_text(git_show(repo, sha, p)) for ds, p in metrics_rel.items()
                    },
                )
            )

    ws_params: dict[str, Any] = {}
    if Path(params_path).is_file():
        ws_params = _load_yaml_text(Path(params_path).read_text(encoding="utf-8"))
    ws_metrics = {}
    for ds in datasets:
        p = Path(metrics_dir) / f"{ds}.json"
        ws_metrics[ds] = _load_json_text(p.read_text(encoding="utf-8")) if p.is_file() else None
    exps.append(
        Experiment(
            name="workspace (this run)",
            kind="workspace",
            rev=None,
            params=ws_params,
            metrics=ws_metrics,
            base_rev=head,
        )
    )
    return exps


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def _fmt_value(value: Any) -> str:
    return "-" if value is None else str(value)


def comparison_rows(experiments: list[Experiment], datasets: list[str]) -> list[dict[str, Any]]:
    """One row per experiment: changed params vs the baseline, DSC / HD95 and their deltas.

    The baseline is the ``HEAD`` experiment (or the first one when there is no commit).
    Columns: ``experiment, rev, changed_params`` and per dataset ``<ds>_dsc``,
    ``<ds>_dsc_delta``, ``<ds>_hd95``, ``<ds>_hd95_delta`` (None where unknown).
    """
    if not experiments:
        return []
    base = next((e for e in experiments if e.kind == "baseline"), experiments[0])
    rows = []
    for exp in experiments:
        diff = params_diff(base.params, exp.params)
        row: dict[str, Any] = {
            "experiment": exp.name,
            "rev": exp.rev[:7] if exp.rev else "workspace",
            "changed_params": "; ".join(
                f"{k}: {_fmt_value(a)} -> {_fmt_value(b)}" for k, (a, b) in diff.items()
            ),
        }
        for ds in datasets:
            m = exp.metrics.get(ds) or {}
            b = base.metrics.get(ds) or {}
            for key in ("dsc", "hd95"):
                v, bv = _num(m.get(key)), _num(b.get(key))
                row[f"{ds}_{key}"] = v
                row[f"{ds}_{key}_delta"] = None if v is None or bv is None else v - bv
        rows.append(row)
    return rows
