"""DVC's own time around the stages: reading and rewriting ``dvc.lock`` with each YAML parser.

Between two stages of ``dvc repro``, DVC itself works: it reads ``dvc.yaml``, ``params.yaml``
and ``dvc.lock`` to decide what to run, and after each stage parses ``dvc.lock`` again in
ruamel.yaml's round-trip mode and writes it back. Its safe loads use ruamel.yaml's C parser
when one is installed (``ruamel.yaml.clib``, which ruamel.yaml stopped requiring in 0.19.1)
and its pure-Python parser otherwise; the round trip is always pure Python. This script
measures, in one run:

* ``parse``: one load of a ``dvc.lock`` with the C safe parser, the pure-Python one and the
  round-trip one, and one round-trip dump (median of ``--repeats``), for the working tree's
  lock and for the lock of each ``--lock-refs`` revision (an older, larger lock);
* ``dvc status`` (and, with ``--repro``, ``dvc repro -f -s`` of the named stages) run in a
  fresh process with the C parser and with the pure-Python one (the C module blocked), the
  two taking turns for ``--rounds``; each records the wall time and the DVC process's own CPU
  time (its children, the stages' commands, apart).

``--repro`` reruns those stages in this working tree: their outputs are rewritten (the same
bytes for the study's deterministic stages; ``git status`` shows otherwise). Run it alone on
the machine. Prints a table and writes ``benchmarks/results/dvc_overhead.json`` (sorted keys).
Usage::

    python benchmarks/dvc_overhead.py --lock-refs c2b8db0
    python benchmarks/dvc_overhead.py --repro compare@synapse compare@acdc
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import machine_info  # benchmarks/ is the script's folder, on sys.path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "dvc_overhead.json"

PARSERS = ("c", "pure")

#: Runs the DVC command line in this process and prints its own CPU time and its children's.
#: With the C module blocked (``sys.modules`` entry ``None``), ruamel.yaml's import of it
#: fails and it falls back to its pure-Python parser, as it does where clib is missing.
CHILD = r"""
import json, resource, sys, time
if sys.argv[1] == "pure":
    sys.modules["_ruamel_yaml"] = None
from ruamel.yaml import YAML
from dvc.cli import main
parser = YAML(typ="safe").Parser.__module__
t0 = time.perf_counter()
rc = main(sys.argv[2:])
wall = time.perf_counter() - t0
own = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print("DVC_OVERHEAD " + json.dumps({
    "returncode": rc, "wall_seconds": wall, "parser_module": parser,
    "dvc_cpu_seconds": own.ru_utime + own.ru_stime,
    "children_cpu_seconds": kids.ru_utime + kids.ru_stime,
}))
"""


def run_dvc(parser: str, args: list[str], cwd: Path = REPO) -> dict[str, Any]:
    """One DVC command line in a fresh process with ``parser`` (``"c"`` or ``"pure"``).

    Returns:
        ``returncode``, ``wall_seconds`` (of the command, after the imports),
        ``dvc_cpu_seconds`` (the DVC process's own), ``children_cpu_seconds`` and
        ``parser_module`` (the module of the safe loader's parser, which shows which one ran).

    Raises:
        RuntimeError: The command failed; the message holds its output's tail.
    """
    # The stages' commands say `python`: this interpreter's, as in an activated environment.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, parser, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("DVC_OVERHEAD ")]
    record = json.loads(lines[-1].removeprefix("DVC_OVERHEAD ")) if lines else {}
    if proc.returncode != 0 or record.get("returncode") != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise RuntimeError(f"dvc {' '.join(args)} ({parser} parser) failed:\n{tail}")
    return record


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def parse_times(text: str, repeats: int) -> dict[str, float]:
    """Median seconds of one load of YAML ``text`` per parser, and of one round-trip dump.

    Raises:
        RuntimeError: ruamel.yaml's C parser is not installed.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    if CParser is None:
        raise RuntimeError("ruamel.yaml's C parser is not installed (pip install ruamel.yaml.clib)")
    data = YAML(typ="rt").load(text)

    def dump() -> None:
        YAML(typ="rt").dump(data, io.StringIO())

    return {
        "safe_c": _median_seconds(lambda: YAML(typ="safe").load(text), repeats),
        "safe_pure": _median_seconds(lambda: YAML(typ="safe", pure=True).load(text), repeats),
        "round_trip": _median_seconds(lambda: YAML(typ="rt").load(text), repeats),
        "round_trip_dump": _median_seconds(dump, repeats),
    }


def lock_text(repo: Path, ref: str | None) -> str:
    """``dvc.lock`` of ``repo``'s working tree (``ref`` None) or of its git revision ``ref``."""
    if ref is None:
        return (repo / "dvc.lock").read_text()
    return subprocess.run(
        ["git", "show", f"{ref}:dvc.lock"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (command, parser): the median wall and DVC CPU seconds over its rounds, and the
    pure parser's medians over the C one's (``pure_over_c``, on the C rows)."""
    keys = sorted({(r["command"], r["parser"]) for r in runs})
    rows = []
    for command, parser in keys:
        mine = [r for r in runs if r["command"] == command and r["parser"] == parser]
        rows.append(
            {
                "command": command,
                "parser": parser,
                "rounds": len(mine),
                "wall_seconds": statistics.median(r["wall_seconds"] for r in mine),
                "dvc_cpu_seconds": statistics.median(r["dvc_cpu_seconds"] for r in mine),
            }
        )
    for row in rows:
        if row["parser"] != "c":
            continue
        pure = [r for r in rows if r["command"] == row["command"] and r["parser"] == "pure"]
        if pure:
            row["pure_over_c_dvc_cpu"] = pure[0]["dvc_cpu_seconds"] / row["dvc_cpu_seconds"]
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurements; returns what it writes to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the DVC project (default: this)")
    parser.add_argument("--lock-refs", nargs="*", default=[], help="older locks to parse too")
    parser.add_argument("--repro", nargs="*", default=[], help="stages to rerun with each parser")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    repo = args.repo.resolve()

    from mtunet.fileio import write_json

    locks = []
    for ref in [None, *args.lock_refs]:
        text = lock_text(repo, ref)
        locks.append(
            {
                "lock": ref or "working tree",
                "bytes": len(text.encode()),
                "stages": len(_stage_names(text)),
                **parse_times(text, args.repeats),
            }
        )
    commands = [["status"]] + ([["repro", "-f", "-s", *args.repro]] if args.repro else [])
    runs = []
    for rnd in range(args.rounds):
        for command in commands:
            for which in PARSERS:
                record = run_dvc(which, command, repo)
                runs.append({"command": " ".join(command), "parser": which, "round": rnd, **record})
                print(
                    f"round {rnd} {which:<4} dvc {' '.join(command)}: "
                    f"{record['wall_seconds']:.2f} s wall, {record['dvc_cpu_seconds']:.2f} s DVC CPU",
                    flush=True,
                )
    rows = summarise(runs)

    print(
        f"\n{'dvc.lock':<14}{'KB':>6}{'stages':>8}{'safe C':>9}{'safe py':>9}{'rt load':>9}{'rt dump':>9}"
    )
    for lk in locks:
        print(
            f"{lk['lock']:<14}{lk['bytes'] / 1024:>6.0f}{lk['stages']:>8}{lk['safe_c']:>9.3f}"
            f"{lk['safe_pure']:>9.3f}{lk['round_trip']:>9.3f}{lk['round_trip_dump']:>9.3f}"
        )
    print(f"\n{'command':<40}{'parser':<8}{'wall s':>8}{'DVC CPU s':>11}")
    for row in rows:
        print(
            f"{row['command'][:39]:<40}{row['parser']:<8}{row['wall_seconds']:>8.2f}"
            f"{row['dvc_cpu_seconds']:>11.2f}"
        )
    result = {
        "benchmark": "dvc_overhead",
        "locks": locks,
        "machine": machine_info("cpu", dvc=_version("dvc"), ruamel_yaml=_version("ruamel.yaml")),
        "rows": rows,
        "runs": runs,
        "settings": {"repeats": args.repeats, "rounds": args.rounds, "repro": args.repro},
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


def _stage_names(text: str) -> list[str]:
    from ruamel.yaml import YAML

    return sorted(YAML(typ="safe").load(text).get("stages", {}))


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
