"""How far a rerun of the study on another machine moves its numbers and its verdicts.

A training run amplifies last-bit differences, so a machine that rounds differently (another
CPU vendor, another thread count) trains other weights. This script reruns the whole study
of a finished workspace under each such difference, simulated on this machine, and compares
every mean and every verdict with the workspace's:

* ``other vendor``: MKL takes the other vendor's dispatch (the preloaded vendor shim of
  ``benchmarks/cpu_reproducibility.py``): what a user with an Intel CPU gets here;
* ``1 thread``, ``4 threads``: a machine with that many cores, where torch starts with that
  many threads (MKL, oneDNN and ATen split their sums by thread). The start count is set by
  ``torch.set_num_threads`` from a ``sitecustomize`` module put first on the reruns'
  ``PYTHONPATH``, as ``OMP_NUM_THREADS`` would on such a machine: torch caps
  ``OMP_NUM_THREADS`` at the cores it sees, so that variable alone cannot simulate more
  threads than this machine has. A study that fixes ``train.threads`` then runs with its own
  count, as it would on that machine. Each rerun's ``train.json`` must record the start
  count (``torch_threads_default``) and MKL branch it was meant to run with, or the rerun
  fails;
* ``another seed``: every training seed of ``study.seeds`` plus one, on this machine: how far
  a result moves when the networks are trained again, the spread a verdict from one seed
  does not contain (the data, the phantoms' seed, stays).

Each rerun is a ``git clone`` of the workspace (its committed code and ``params.yaml``) in a
temporary folder, with ``dvc repro`` of every stage up to ``compare`` under the simulated
difference (a fresh clone's study, from phantoms to comparison, minus the report). The
workspace itself must hold the finished study (``compare/<ds>/comparison.json``), made with
the same code. ``--merge`` keeps the reruns of an earlier file of the same configuration
that this call does not repeat.

Writes ``benchmarks/results/rerun_spread.json`` (sorted keys): per rerun and dataset, every
variant's mean DSC and HD95 beside the workspace's, every comparison's verdict beside the
workspace's; the largest move per dataset and variant; whether every verdict held; the
machine; and the digest of the ``params.yaml`` sections that decide the study's numbers
(less the ``train`` settings that change none), so
the report quotes the result only for the configuration it was measured on
(:func:`mtunet.report.spread.study_digest`). CPU-heavy (one whole study per rerun: about
10 minutes each on a 2-core machine), not a timing. Usage::

    python benchmarks/rerun_spread.py                      # every simulated difference
    python benchmarks/rerun_spread.py --reruns "another seed" --merge
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "rerun_spread.json"
RERUNS = ("other vendor", "1 thread", "4 threads", "another seed")
#: What ``another seed`` adds to every training seed.
SEED_SHIFT = 1
METRICS = ("dsc", "hd95")


#: The environment variable the reruns' ``sitecustomize`` reads.
THREADS_ENV = "RERUN_SPREAD_TORCH_THREADS"
SITECUSTOMIZE = f"""# Written by benchmarks/rerun_spread.py: torch's threads, as a machine with that many has.
import os

if os.environ.get("{THREADS_ENV}"):
    import torch

    torch.set_num_threads(int(os.environ["{THREADS_ENV}"]))
"""


def environment(rerun: str, shim: Path) -> dict[str, str]:
    """The environment variables that simulate one rerun's machine."""
    return {
        "other vendor": {"LD_PRELOAD": str(shim)},
        "1 thread": {THREADS_ENV: "1"},
        "4 threads": {THREADS_ENV: "4"},
        "another seed": {},
    }[rerun]


def shifted_seeds(params: dict[str, Any]) -> list[int]:
    """``another seed``'s training seeds: each of ``study.seeds`` plus :data:`SEED_SHIFT`."""
    return [int(s) + SEED_SHIFT for s in (params.get("study") or {}).get("seeds") or ()]


def mkl_branch_of(folder: Path) -> str | None:
    """The MKL branch a study's training runs recorded (the first run's), or None."""
    from mtunet.fileio import read_json

    for path in sorted(folder.glob("models/*/*/seed*/train.json")):
        return (read_json(path).get("machine") or {}).get("mkl_branch")
    return None


def check_runs(
    folder: Path,
    rerun: str,
    env: dict[str, str],
    seeds: list[int] | None = None,
    own_branch: str | None = "AUTO",
) -> list[dict[str, Any]]:
    """Every training run of a rerun, with the threads it started with and used, its MKL
    branch and seed; raises when one did not run the simulated machine (or seeds).

    Under the vendor shim, MKL must have taken another branch than ``own_branch``, the one
    the workspace's runs recorded on this machine: ``AVX2`` where the shim makes an AMD CPU
    look Intel, ``AUTO`` where it makes an Intel CPU look like another vendor.
    """
    from mtunet.fileio import read_json

    runs = []
    for path in sorted(folder.glob("models/*/*/seed*/train.json")):
        info = read_json(path)
        resources = info.get("resources") or {}
        got = {
            "run": path.parent.relative_to(folder / "models").as_posix(),
            "torch_threads": resources.get("torch_threads"),
            # Files from before train.threads: the start count is the count used.
            "torch_threads_default": resources.get(
                "torch_threads_default", resources.get("torch_threads")
            ),
            "mkl_branch": (info.get("machine") or {}).get("mkl_branch"),
        }
        start = int(env.get(THREADS_ENV, got["torch_threads_default"] or 0))
        seed = int(path.parent.name.removeprefix("seed"))
        if (
            got["torch_threads_default"] != start
            or ("LD_PRELOAD" in env and got["mkl_branch"] in (own_branch, None))
            or (seeds is not None and seed not in seeds)
        ):
            raise SystemExit(f"rerun {rerun!r}: {got['run']} did not run as simulated: {got}")
        runs.append(got)
    return runs


def study_numbers(root: Path, datasets: list[str]) -> dict[str, Any]:
    """Per dataset: every variant's means and every comparison's verdict, from compare/."""
    from mtunet.fileio import read_json

    out: dict[str, Any] = {}
    for ds in datasets:
        comp = read_json(root / "compare" / ds / "comparison.json")
        variants = {
            name: {m: (entry.get(m) or {}).get("mean") for m in METRICS}
            for name, entry in comp["variants"].items()
        }
        verdicts = {
            f"{group}/{metric}/{row['variant']}": {
                "verdict": row.get("verdict"),
                "diff": row.get("diff"),
                "ci": [row.get("ci_low"), row.get("ci_high")],
            }
            for group, by_metric in (comp.get("comparisons") or {}).items()
            for metric, rows in (by_metric or {}).items()
            for row in rows or ()
        }
        out[ds] = {"variants": variants, "comparisons": verdicts}
    return out


def compare(base: dict[str, Any], rerun: dict[str, Any]) -> dict[str, Any]:
    """One rerun against the workspace: moves of the means, verdicts held or not."""
    out: dict[str, Any] = {}
    for ds, numbers in base.items():
        other = rerun[ds]
        variants = {
            name: {
                m: {
                    "committed": means[m],
                    "rerun": other["variants"][name][m],
                    "move": other["variants"][name][m] - means[m],
                }
                for m in METRICS
                if means[m] is not None and other["variants"][name].get(m) is not None
            }
            for name, means in numbers["variants"].items()
        }
        comparisons = {
            key: {
                "committed": row["verdict"],
                "rerun": other["comparisons"][key]["verdict"],
                "same": row["verdict"] == other["comparisons"][key]["verdict"],
                "diff_committed": row["diff"],
                "diff_rerun": other["comparisons"][key]["diff"],
            }
            for key, row in numbers["comparisons"].items()
        }
        out[ds] = {"variants": variants, "comparisons": comparisons}
    return out


def summary(reruns: dict[str, Any]) -> dict[str, Any]:
    """Per dataset and variant, the largest move of each mean; whether every verdict held."""
    largest: dict[str, Any] = {}
    held = True
    for per_ds in reruns.values():
        for ds, res in per_ds["results"].items():
            for name, by_metric in res["variants"].items():
                for m, v in by_metric.items():
                    slot = largest.setdefault(ds, {}).setdefault(name, {})
                    slot[m] = max(slot.get(m, 0.0), abs(v["move"]))
            held &= all(c["same"] for c in res["comparisons"].values())
    return {"largest_move": largest, "every_verdict_held": held}


def with_seeds(params_file: Path, seeds: list[int]) -> None:
    """Rewrite ``params_file`` (a clone's, comments not kept) with ``study.seeds: seeds``."""
    import yaml

    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    params["study"]["seeds"] = seeds
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def earlier_reruns(path: Path, digest: str, base: dict[str, Any]) -> dict[str, Any]:
    """The reruns of ``path`` when it measured this configuration against the same committed
    numbers; else none (a rerun of other parameters or results says nothing about these)."""
    from mtunet.fileio import read_json

    if not path.is_file():
        return {}
    doc = read_json(path)
    if doc.get("study_digest") != digest or doc.get("committed") != base:
        return {}
    return dict(doc.get("reruns") or {})


def rerun_study(
    rerun: str,
    env: dict[str, str],
    repo: Path,
    folder: Path,
    site: Path,
    seeds: list[int] | None = None,
) -> float:
    """Clone ``repo`` into ``folder`` and reproduce its study up to the comparison (with
    ``seeds`` as ``study.seeds`` when given); ``site`` holds the ``sitecustomize`` that sets
    the threads."""
    subprocess.run(["git", "clone", "-q", str(repo), str(folder)], check=True)
    if seeds is not None:
        with_seeds(folder / "params.yaml", seeds)
    own = ("LD_PRELOAD", "OMP_NUM_THREADS", "MKL_NUM_THREADS", THREADS_ENV)
    clean = {k: v for k, v in os.environ.items() if k not in own}
    # The clone's own package first, whatever is installed; the thread setter before it.
    clean["PYTHONPATH"] = os.pathsep.join([str(site), str(folder), clean.get("PYTHONPATH", "")])
    targets = ["compare@synapse", "compare@acdc"]
    t0 = time.perf_counter()
    with open(folder / "rerun.log", "w", encoding="utf-8") as log:
        done = subprocess.run(
            [sys.executable, "-m", "dvc", "repro", *targets],
            cwd=folder,
            env={**clean, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        raise SystemExit(f"rerun {rerun!r} failed: see {folder / 'rerun.log'}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reruns", nargs="+", default=list(RERUNS), choices=RERUNS)
    p.add_argument("--baseline", type=Path, default=ROOT, help="the finished study to compare")
    p.add_argument("--keep", type=Path, default=None, help="keep the reruns' clones here")
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument(
        "--merge", action="store_true", help="keep --out's other reruns of this configuration"
    )
    args = p.parse_args(argv)
    import torch
    from cpu_reproducibility import vendor_shim
    from machine import machine_info

    from mtunet.config import load_params
    from mtunet.fileio import write_json
    from mtunet.numerics import cpu_vendor
    from mtunet.report.spread import study_digest

    params = load_params(args.baseline / "params.yaml")
    datasets = [d for d in ("synapse", "acdc") if d in params.get("datasets", {})]
    base = study_numbers(args.baseline, datasets)
    own_branch = mkl_branch_of(args.baseline)
    reruns = earlier_reruns(args.out, study_digest(params), base) if args.merge else {}
    with tempfile.TemporaryDirectory() as tmp:
        keep = args.keep or Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        shim = vendor_shim(Path(tmp), intel=cpu_vendor() != "GenuineIntel")
        site = Path(tmp) / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        for rerun in args.reruns:
            folder = keep / rerun.replace(" ", "_")
            env = environment(rerun, shim)
            seeds = shifted_seeds(params) if rerun == "another seed" else None
            seconds = rerun_study(rerun, env, args.baseline, folder, site, seeds)
            runs = check_runs(folder, rerun, env, seeds, own_branch)
            results = compare(base, study_numbers(folder, datasets))
            shown = {k: ("<vendor shim>" if k == "LD_PRELOAD" else v) for k, v in env.items()}
            reruns[rerun] = {"env": shown, "seconds": seconds, "runs": runs, "results": results}
            print(f"{rerun}: {seconds / 60:.1f} min", flush=True)
            for ds, res in results.items():
                for name, by_metric in res["variants"].items():
                    moves = ", ".join(f"{m} {v['move']:+.2f}" for m, v in by_metric.items())
                    print(f"  {ds} {name}: {moves}")
                for key, c in res["comparisons"].items():
                    print(f"  {ds} {key}: {c['committed']} -> {c['rerun']}")
    result = {
        "benchmark": "rerun_spread",
        "machine": machine_info(torch.device("cpu"), vendor=cpu_vendor()),
        "study_digest": study_digest(params),
        "committed": base,
        "reruns": reruns,
        **summary(reruns),
    }
    write_json(args.out, result)
    print(f"every verdict held: {result['every_verdict_held']}; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
