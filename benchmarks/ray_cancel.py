"""How often stopping a study run aborts the launcher: Ray's cancel against the cancel files.

Each launch is a fresh Python process, as ``mtunet study run`` is: it starts a local Ray
instance, submits one task running :func:`mtunet.scaleout.worker.run_stage` on a command
that sleeps, waits until the command runs, stops it, shuts Ray down and exits 130. Two ways
to stop it:

* ``ray cancel``: what the launcher did up to this change: ``ray.cancel`` (graceful), wait
  for the task, then ``ray.cancel(force=True)``;
* ``cancel files``: :func:`mtunet.scaleout.runner.cancel_tasks`: the stage's cancel file,
  Ray's cancel only for a task not back in time.

The launches alternate between the two ways. A launch that exits with anything but 130 was
aborted; the record keeps whether its output
holds Ray's ``Tried to complete task that was not pending`` check failure. Not a timing:
the seconds show whether the stop waited out the launcher's 30-s wait.

``--sigint ignored`` starts each launch with SIGINT ignored, as a shell starts a background
job (``cmd &``, ``nohup``; Ray's workers inherit it): Ray's graceful cancel then never reaches
the task. ``default`` (the default) is a launch from a terminal. Writes
``benchmarks/results/ray_cancel.json`` or ``ray_cancel_sigint_ignored.json`` (sorted keys).
Usage::

    python benchmarks/ray_cancel.py --launches 15
    python benchmarks/ray_cancel.py --launches 5 --sigint ignored
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "ray_cancel.json"
WAYS = ("ray cancel", "cancel files")
RAY_CHECK = "Tried to complete task that was not pending"


def ray_cancel(ray: Any, refs: list[Any]) -> None:
    """The launcher's former stop: graceful cancel, wait, then cancel by force."""
    for ref in refs:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=False)
    with contextlib.suppress(Exception):
        ray.wait(refs, num_returns=len(refs), timeout=30.0)
    for ref in refs:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)


@dataclass
class _Run:
    cmd: Any


def launch(way: str, folder: Path, sigint: str) -> None:
    """One launch, in this process; exits 130 unless Ray aborts it first."""
    import ray

    # Set before Ray starts its processes, which inherit it.
    signal.signal(signal.SIGINT, signal.SIG_IGN if sigint == "ignored" else signal.SIG_DFL)

    from mtunet.scaleout.runner import cancel_tasks
    from mtunet.scaleout.worker import StageCommand, run_stage

    pid = folder / "pid"
    code = f"import os, time; open({str(pid)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    cmd = StageCommand(
        name="sleep",
        commands=(f'{sys.executable} -c "{code}"',),
        cwd=str(folder),
        log=str(folder / "stage.log"),
        record=str(folder / "stage.json"),
        cancel=str(folder / "stage.cancel") if way == "cancel files" else "",
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ref = ray.remote(num_cpus=1, max_retries=0)(run_stage).remote(cmd)
    while not pid.is_file():
        time.sleep(0.1)
    time.sleep(0.5)  # the launcher's signal comes while the command runs
    began = time.monotonic()
    if way == "ray cancel":
        ray_cancel(ray, [ref])
    else:
        cancel_tasks(ray, {ref: _Run(cmd)})
    print(f"stopped in {time.monotonic() - began:.2f} s", flush=True)
    ray.shutdown()
    sys.exit(130)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=15, help="launches per way")
    parser.add_argument("--sigint", choices=("default", "ignored"), default="default")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or (
        RESULT if args.sigint == "default" else RESULT.with_name("ray_cancel_sigint_ignored.json")
    )

    import ray
    from machine import machine_info

    from mtunet.fileio import write_json

    rows: list[dict[str, Any]] = []
    # Interleaved, so that both ways meet the same conditions on the machine.
    for i in range(args.launches):
        for way in WAYS:
            with tempfile.TemporaryDirectory() as tmp:
                proc = subprocess.run(
                    [sys.executable, __file__, "--launch", way, tmp, args.sigint],
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
            text = proc.stdout + proc.stderr
            stopped = [ln for ln in text.splitlines() if ln.startswith("stopped in ")]
            rows.append(
                {
                    "way": way,
                    "launch": i + 1,
                    "exit_status": proc.returncode,
                    "ray_check_failure": RAY_CHECK in text,
                    "stop_seconds": float(stopped[0].split()[2]) if stopped else None,
                }
            )
            print(f"{way:>12} {i + 1:3d}: exit {proc.returncode}", flush=True)
    summary = {}
    print(f"\n{'way':>12} | launches | aborted | Ray check failures")
    for way in WAYS:
        mine = [r for r in rows if r["way"] == way]
        aborted = sum(r["exit_status"] != 130 for r in mine)
        checks = sum(r["ray_check_failure"] for r in mine)
        summary[way] = {"launches": len(mine), "aborted": aborted, "ray_check_failures": checks}
        print(f"{way:>12} | {len(mine):8d} | {aborted:7d} | {checks}")
    result = {
        "benchmark": "ray_cancel",
        "machine": machine_info("cpu", ray=ray.__version__),
        "note": "launches run one after another, the two ways alternating",
        "rows": rows,
        "sigint": args.sigint,
        "summary": summary,
    }
    write_json(out, result)
    return result


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--launch":
        launch(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
    else:
        main()
