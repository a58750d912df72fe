"""How often each interval method covers the true mean on Dice-like scores, and which to use.

Simulates, for every scenario of :mod:`mtunet.report.coverage` (a mean over cases: tight,
skewed with 10 % failures, bimodal; a paired difference of two correlated such scores, with
a true difference of 0 or not), every n of the grid (4 to 40 cases) and every method of
:mod:`mtunet.report.intervals` (Student t, scipy's percentile, basic and BCa bootstraps, the
bootstrap-t), the fraction of studies whose interval holds the true mean and the median
width; for differences also at 99 % (a 95 % family of five Bonferroni-adjusted comparisons).
Then the same for a difference whose models have 2, 3 or 5 seeds each
(:mod:`mtunet.report.seeds_cases`: the seeds-and-cases t, the crossed two-level bootstrap,
a t over cases that leaves the seeds out).

It applies the rule of :func:`mtunet.report.choice.choose` at 95 % to pick the method per n
(kind ``mean``, ``difference``, ``seeds``), prints the tables and writes
``benchmarks/results/interval_coverage.json`` (sorted keys): the settings, the machine, one
row per simulated cell and the choice. CPU work only, not a timing (minutes)::

    python benchmarks/interval_coverage.py               # the committed run
    python benchmarks/interval_coverage.py --studies 500 --out /tmp/x.json   # a quick look
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "interval_coverage.json"
LEVELS = {"mean": (0.95,), "difference": (0.95, 0.99), "seeds": (0.95, 0.99)}
SEED_COUNTS = (2, 3, 5)
SEED_GRID_N = (4, 6, 8, 12, 20, 30, 40)


def _rows(
    n_studies: int, n_resamples: int, seed: int, grid_n: Iterable[int]
) -> list[dict[str, Any]]:
    from mtunet.report.coverage import scenarios, simulate, simulate_seeds
    from mtunet.report.intervals import METHODS
    from mtunet.report.seeds_cases import SEED_METHODS

    rows: list[dict[str, Any]] = []

    def add(kind: str, sc: Any, n: int, k: int, level: float, res: dict) -> None:
        for method, r in res.items():
            rows.append(
                {
                    "kind": kind,
                    "scenario": sc.name,
                    "family": sc.family,
                    "n": n,
                    "seeds": k,
                    "confidence": level,
                    "method": method,
                    **r,
                }
            )

    grid_n = list(grid_n)
    for kind in ("mean", "difference"):
        for sc in scenarios(kind):  # type: ignore[arg-type]
            for n in grid_n:
                for level in LEVELS[kind]:
                    add(
                        kind,
                        sc,
                        n,
                        1,
                        level,
                        simulate(sc, n, METHODS, level, n_studies, n_resamples, seed),
                    )
            print(f"  {kind}: {sc.name} done", file=sys.stderr, flush=True)
    for sc in scenarios("difference"):
        for n in [n for n in SEED_GRID_N if n in grid_n]:
            for k in SEED_COUNTS:
                for level in LEVELS["seeds"]:
                    # The two-level bootstrap is the slow one; at 95 % it is already behind.
                    methods = SEED_METHODS if level == 0.95 else ("t_seeds_cases", "t_cases")
                    res = simulate_seeds(sc, n, k, methods, level, n_studies, n_resamples, seed)
                    add("seeds", sc, n, k, level, res)
        print(f"  seeds: {sc.name} done", file=sys.stderr, flush=True)
    return rows


def choices(rows: list[dict[str, Any]], n_studies: int, level: float = 0.95) -> dict[str, Any]:
    """Per kind: the rule's method and whether it meets the targets at each n, and the
    table of n ranges. A family's coverage is that of its worst scenario (and seed count)."""
    from mtunet.report.choice import PREFERENCE, choose, table_from_choices

    out: dict[str, Any] = {}
    for kind, preference in PREFERENCE.items():
        cells = [r for r in rows if r["kind"] == kind and r["confidence"] == level]
        per_n: dict[int, dict[str, Any]] = {}
        for n in sorted({r["n"] for r in cells}):
            cov: dict[str, dict[str, float]] = {m: {} for m in preference}
            for r in cells:
                if r["n"] == n:
                    fam = cov[r["method"]]
                    fam[r["family"]] = min(fam.get(r["family"], 1.0), r["coverage"])
            method, meets = choose(cov, n, level, n_studies, preference)
            per_n[n] = {"method": method, "meets_targets": meets, "coverage": cov[method]}
        table = table_from_choices({n: c["method"] for n, c in per_n.items()})
        out[kind] = {"per_n": per_n, "table": [list(r) for r in table]}
    return out


def print_tables(rows: list[dict[str, Any]], level: float = 0.95) -> None:
    """Coverage (%) per scenario, n and method at ``level`` (seeds: the worst seed count)."""
    for kind in ("mean", "difference", "seeds"):
        cells = [r for r in rows if r["kind"] == kind and r["confidence"] == level]
        methods = list(dict.fromkeys(r["method"] for r in cells))
        for name in dict.fromkeys(r["scenario"] for r in cells):
            print(f"\n{kind} / {name}: coverage % at {level:.0%}")
            print("   n  " + "  ".join(f"{m:>19s}" for m in methods))
            for n in sorted({r["n"] for r in cells}):
                vals = []
                for m in methods:
                    cov = [
                        r["coverage"]
                        for r in cells
                        if r["scenario"] == name and r["n"] == n and r["method"] == m
                    ]
                    vals.append(f"{100 * min(cov):19.1f}")
                print(f"  {n:3d} " + "  ".join(vals))


LABELS = {
    "t": "t",
    "percentile": "percentile",
    "basic": "basic",
    "bca": "BCa",
    "bootstrap_t": "bootstrap-t",
    "t_seeds_cases": "t, seeds + cases",
    "two_level_bootstrap": "two-level bootstrap",
    "t_cases": "t, cases only",
}
FAMILIES = ("tight", "skewed", "bimodal")


def markdown(result: dict[str, Any], kind: str, level: float = 0.95) -> str:
    """A Markdown table of ``kind``'s coverage (%) at ``level``: one row per n, one column
    per method, each cell "tight / skewed / bimodal" (a family's worst scenario and, for
    ``seeds``, its worst seed count); the chosen method's cells in bold."""
    rows = [r for r in result["rows"] if r["kind"] == kind and r["confidence"] == level]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    chosen = result["choice"][kind]["per_n"] if level == 0.95 else {}
    lines = [
        "| n | " + " | ".join(LABELS[m] for m in methods) + " |",
        "|---:|" + "---|" * len(methods),
    ]
    for n in sorted({r["n"] for r in rows}):
        cells = []
        for m in methods:
            worst = {}
            for r in rows:
                if r["n"] == n and r["method"] == m:
                    worst[r["family"]] = min(worst.get(r["family"], 1.0), r["coverage"])
            text = " / ".join(f"{100 * worst[f]:.1f}" for f in FAMILIES)
            bold = chosen.get(str(n), chosen.get(n, {})).get("method") == m
            cells.append(f"**{text}**" if bold else text)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--studies", type=int, default=4000, help="simulated studies per cell")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, nargs="*", default=None, help="case counts (default: grid)")
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print the docs' tables from the stored result; simulate nothing",
    )
    args = p.parse_args(argv)

    from mtunet.fileio import read_json

    if args.markdown:
        result = read_json(args.out)
        for kind, level in (
            ("mean", 0.95),
            ("difference", 0.95),
            ("difference", 0.99),
            ("seeds", 0.95),
            ("seeds", 0.99),
        ):
            print(f"\n{kind} at {level:.0%}\n\n{markdown(result, kind, level)}")
        return result

    import scipy
    from machine import machine_info

    from mtunet.fileio import write_json
    from mtunet.report.choice import PREFERENCE
    from mtunet.report.coverage import GRID_N, TARGETS, SeedNoise, scenarios

    grid_n = tuple(args.n or GRID_N)
    rows = _rows(args.studies, args.resamples, args.seed, grid_n)
    print_tables(rows)
    chosen = choices(rows, args.studies)
    for kind, c in chosen.items():
        print(f"\n{kind}: " + ", ".join(f"{a}-{b or ''}: {m}" for a, b, m in c["table"]))
        print(
            "  below target at n = "
            + str([n for n, v in c["per_n"].items() if not v["meets_targets"]])
        )
    result = {
        "settings": {
            "n_studies": args.studies,
            "n_resamples": args.resamples,
            "seed": args.seed,
            "grid_n": list(grid_n),
            "seed_grid_n": [n for n in SEED_GRID_N if n in grid_n],
            "seed_counts": list(SEED_COUNTS),
            "levels": {k: list(v) for k, v in LEVELS.items()},
            "seed_noise": asdict(SeedNoise()),
            "targets": {
                f: {**asdict(t), "coverage_at_95": t.coverage(0.95)} for f, t in TARGETS.items()
            },
            "preference": {k: list(v) for k, v in PREFERENCE.items()},
            "scenarios": {
                sc.name: {
                    "kind": sc.kind,
                    "family": sc.family,
                    "true_mean": sc.true_mean,
                    "reference": [list(c) for c in sc.reference.components],
                    "variant": [list(c) for c in sc.variant.components] if sc.variant else None,
                    "rho": sc.rho,
                }
                for kind in ("mean", "difference")
                for sc in scenarios(kind)  # type: ignore[arg-type]
            },
        },
        "machine": machine_info("cpu", scipy=scipy.__version__),
        "rows": rows,
        "choice": chosen,
    }
    write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
