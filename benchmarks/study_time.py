"""The quick study's wall time on a fresh clone, stage by stage, beside a baseline revision.

For each git revision given, this repository is cloned at that revision into a temporary
folder and its whole study is run there with ``dvc repro``, as a new user's first command
does (phantoms, preprocessing, every training, evaluation, comparison and the report). The
clone's own package comes first on ``PYTHONPATH``, so each revision runs its own code with
this environment's libraries. Each ``Running stage`` line dvc prints is timestamped as it
arrives: a stage's time runs from its line to the next one (its command, then dvc hashing
its outputs and writing the lock), the last stage's to the end of ``dvc repro``, and
``dvc start`` is the time before the first stage. With ``--rounds 2`` the revisions take
turns (A B A B), so a host that slows down for a while slows both.

Each run also checks that its ``metrics/`` came out as the revision committed them, byte for
byte (``git status`` of ``metrics/`` in the clone): a speed-up that changed the study's
numbers shows there.

The host's speed is measured around each run: ``--probe-steps`` training steps of the quick
MT-UNet (this checkout's ``params.yaml``, 2 threads; ``benchmarks/train_speed.py``) before
and after it, their median in ms per step (``probe_ms_per_step``). The same bits took 1.8x
as long on one virtual machine in two runs started 11 minutes apart, so a study's seconds say
little without the speed the host had while it ran (``--probe-steps 0`` skips the probe).

Run it alone on the machine: two CPU-heavy jobs at once each run up to 5x slower. It prints
a table (seconds per stage and revision) and writes ``benchmarks/results/study_time.json``
(sorted keys; ``--out`` elsewhere). A whole study takes about 10 minutes on a 2-core CPU.
Usage::

    python benchmarks/study_time.py --refs 4a6a6ff HEAD
    python benchmarks/study_time.py --refs HEAD~1 HEAD --rounds 2
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "study_time.json"
STAGE_RE = re.compile(r"Running stage '([^']+)'")
#: The name of the time before dvc starts the first stage.
START = "dvc start"


def stage_seconds(events: Iterable[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds per stage from timestamped output lines.

    Args:
        events: ``(seconds since the command started, line)`` in the order printed.
        end: Seconds since the start at which the command ended.

    Returns:
        ``{stage: seconds}`` in run order, with :data:`START` the time before the first
        stage; a stage runs from its ``Running stage`` line to the next one (or ``end``).
    """
    out: dict[str, float] = {}
    name, since = START, 0.0
    for t, line in events:
        match = STAGE_RE.search(line)
        if match is None:
            continue
        out[name] = out.get(name, 0.0) + t - since
        name, since = match.group(1), t
    out[name] = out.get(name, 0.0) + end - since
    return out


def clone_at(repo: Path, ref: str, folder: Path) -> str:
    """Clone ``repo`` into ``folder`` at ``ref``; returns the full commit hash."""
    subprocess.run(["git", "clone", "-q", str(repo), str(folder)], check=True)
    subprocess.run(["git", "checkout", "-q", ref], cwd=folder, check=True)
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=folder, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def clone_env(folder: Path) -> dict[str, str]:
    """This environment with the clone's package first and unbuffered output."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"  # the stage lines must arrive when printed
    return env


def time_study(folder: Path, command: list[str]) -> dict[str, Any]:
    """Run ``command`` (``dvc repro``) in ``folder``, timestamping its output lines.

    Returns:
        ``total_seconds``, ``stages`` (:func:`stage_seconds`), ``returncode`` and
        ``metrics_as_committed`` (``metrics/`` unchanged against the clone's commit).

    Raises:
        SystemExit: The clone would import another copy of ``mtunet``, or the study failed
            (its log is kept in ``folder/study_time.log``).
    """
    env = clone_env(folder)
    where = subprocess.run(
        [sys.executable, "-c", "import mtunet; print(mtunet.__file__)"],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(folder.resolve()):
        raise SystemExit(f"{folder}: imports mtunet from {where}, not from the clone")
    events: list[tuple[float, str]] = []
    log_path = folder / "study_time.log"
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            events.append((time.perf_counter() - t0, line))
            log.write(line)
        code = proc.wait()
    total = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}) in {folder}: see {log_path}")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "metrics"],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {
        "total_seconds": total,
        "stages": stage_seconds(events, total),
        "returncode": code,
        "metrics_as_committed": status.strip() == "",
    }


def probe_ms_per_step(steps: int) -> float:
    """How fast this host computes now: the median ms of a quick MT-UNet training step.

    Runs ``benchmarks/train_speed.py`` in a fresh process on this checkout's default
    configuration (``params.yaml``'s model and batch), 2 threads, 3 warm-up steps first: the
    same work whatever revision is being timed.

    Raises:
        subprocess.CalledProcessError: The probe failed.
    """
    from mtunet.fileio import read_json

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "probe.json"
        cmd = [sys.executable, str(Path(__file__).resolve().parent / "train_speed.py")]
        cmd += ["--device", "cpu", "--configs", "default", "--threads", "2"]
        cmd += ["--steps", str(steps), "--warmup", "3", "--params", str(ROOT / "params.yaml")]
        # The script also times inference; one small volume keeps that short.
        cmd += ["--slices", "1", "--slice-size", "64", "--repeats", "1", "--out", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        return 1000.0 * float(read_json(out)["rows"][0]["train_step_seconds"])


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: seconds per stage (rows) and revision (columns, mean over rounds)."""
    refs = list(dict.fromkeys(r["ref"] for r in rows))
    stages = list(dict.fromkeys(s for r in rows for s in r["stages"]))

    def mean(ref: str, stage: str | None) -> float:
        vals = [
            r["total_seconds"] if stage is None else r["stages"].get(stage, 0.0)
            for r in rows
            if r["ref"] == ref
        ]
        return sum(vals) / len(vals)

    lines = [
        "| stage | " + " | ".join(f"{ref} (s)" for ref in refs) + " |",
        "|---|" + "---:|" * len(refs),
    ]
    lines += [
        f"| {s} | " + " | ".join(f"{mean(ref, s):.1f}" for ref in refs) + " |" for s in stages
    ]
    lines.append("| **total** | " + " | ".join(f"**{mean(ref, None):.1f}**" for ref in refs) + " |")
    probes = [
        [v for r in rows if r["ref"] == ref for v in r.get("probe_ms_per_step", {}).values()]
        for ref in refs
    ]
    if any(probes):
        cells = [f"{min(p):.0f} to {max(p):.0f}" if p else "-" for p in probes]
        lines.append("| probe (ms/step) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--refs", nargs="+", default=["HEAD"], help="git revisions, timed in turn")
    p.add_argument("--rounds", type=int, default=1, help="runs of each revision (alternating)")
    p.add_argument("--repo", type=Path, default=ROOT, help="the repository to clone")
    p.add_argument("--keep", type=Path, default=None, help="keep the clones here")
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument(
        "--command",
        default=f"{sys.executable} -m dvc repro",
        help="what runs the study in a clone (default: this Python's dvc repro)",
    )
    p.add_argument(
        "--probe-steps",
        type=int,
        default=10,
        help="host-speed probe steps before and after each run (0: no probe)",
    )
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds: must be >= 1, got {args.rounds}")
    if args.probe_steps < 0:
        p.error(f"--probe-steps: must be >= 0, got {args.probe_steps}")
    from machine import machine_info

    from mtunet.fileio import write_json

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        keep = args.keep or Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        for round_ in range(args.rounds):
            for i, ref in enumerate(args.refs):
                folder = keep / f"r{round_}_{i}"
                commit = clone_at(args.repo, ref, folder)
                probe = {}
                if args.probe_steps:
                    probe["before"] = probe_ms_per_step(args.probe_steps)
                run = time_study(folder, args.command.split())
                if args.probe_steps:
                    probe["after"] = probe_ms_per_step(args.probe_steps)
                    run["probe_ms_per_step"] = probe
                rows.append({"ref": ref, "commit": commit, "round": round_, **run})
                print(
                    f"{ref} ({commit[:7]}), round {round_ + 1}: {run['total_seconds']:.0f} s, "
                    f"metrics as committed: {run['metrics_as_committed']}",
                    flush=True,
                )
    result = {
        "benchmark": "study_time",
        "machine": machine_info("cpu"),
        "command": args.command.replace(sys.executable, "python"),
        "probe_steps": args.probe_steps,
        "rounds": args.rounds,
        "rows": rows,
    }
    print(table(rows))
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
