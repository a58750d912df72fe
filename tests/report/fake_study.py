"""A small fake study for the report tests: 2 models + 1 ablation, 2 seeds, both datasets.

:func:`make_study` writes it inside a git repository with a baseline commit, a fake
``dvc exp`` ref and a workspace run; ``compare/<ds>`` is produced by the real compare stage
code. Everything is seeded and the git commits have fixed names and dates, so the same code
gives the same report, byte for byte (``test_golden.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mtunet.comparison import run_comparison
from mtunet.fileio import read_json, write_json
from mtunet.metrics import case_metrics, summarize
from mtunet.report.report import build_report
from mtunet.study import RunPaths, StudyConfig

SYN = [
    "background",
    "aorta",
    "gallbladder",
    "kidney_left",
    "kidney_right",
    "liver",
    "pancreas",
    "spleen",
    "stomach",
]
ACDC = ["background", "rv", "myo", "lv"]
NAMES = {"synapse": SYN, "acdc": ACDC}
# Synapse has the phantoms' 4 test cases (no test can reach p < 0.05); ACDC has 8.
N_CASES = {"synapse": 4, "acdc": 8}
STUDY_PARAMS: dict[str, Any] = {
    "models": ["mtunet", "unet"],
    "seeds": [1, 2],
    "ablations": {"no_gaussian": {"gaussian": False}},
    "n_bootstrap": 2000,
}
STUDY = StudyConfig.from_dict(STUDY_PARAMS)
# Label noise per variant: mtunet is the best, unet the worst.
NOISE = {"mtunet": 0.03, "unet": 0.3, "no_gaussian": 0.15}
PARAMS: dict[str, Any] = {
    "datasets": {"synapse": {}, "acdc": {}},
    "model": {"win_size": 7, "width_mult": 0.25},
    "train": {"epochs": 2, "lr": 0.0001},
    "study": STUDY_PARAMS,
    "report": {"max_qualitative": 2, "dpi": 40},
}
COMPLEXITY = {
    "mtunet": {"params": 2_345_678, "gflops": 1.25, "input": [1, 1, 96, 96]},
    "unet": {"params": 1_234_567, "gflops": 3.5, "input": [1, 1, 96, 96]},
    "no_gaussian": {"params": 2_345_000, "gflops": 1.2, "input": [1, 1, 96, 96]},
}


# Fixed identities and dates: the commit hashes (shown in the experiments table) depend on
# them, and the golden report must not change from one run to the next.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
}


def git(repo: Path, *args: str) -> str:
    """stdout of a git command in ``repo``, with fixed names, emails and dates, unsigned."""
    out = subprocess.run(
        ["git", "-C", str(repo), "-c", "commit.gpgsign=false", *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **_GIT_ENV},
    )
    return out.stdout.strip()


def _per_case(ds: str, variant: str, seed: int, offset: int) -> pd.DataFrame:
    """Per-case rows from case_metrics: the same ground truth for every run, noisier
    predictions for worse variants."""
    names = NAMES[ds]
    nc = len(names)
    ds_id = list(NAMES).index(ds)
    rows = []
    for c in range(N_CASES[ds]):
        rng = np.random.default_rng([offset, ds_id, c])
        gt = np.zeros((4, 24, 24), dtype=np.uint8)
        for k in range(1, nc):
            z, y, x = rng.integers(0, 3), rng.integers(2, 18), rng.integers(2, 18)
            gt[z : z + 2, y : y + 5, x : x + 5] = k
        prng = np.random.default_rng([offset, ds_id, c, list(NOISE).index(variant), seed])
        noise = prng.random(gt.shape) < NOISE[variant]
        pred = np.where(noise, prng.integers(0, nc, gt.shape), gt).astype(np.uint8)
        for r in case_metrics(pred, gt, nc, spacing=(2.0, 0.8, 0.8), nsd_tolerance=2.0):
            rows.append({"case": f"case{c:04d}", "class_name": names[r["class_id"]], **r})
    return pd.DataFrame(rows)


def _write_run(root: Path, ds: str, variant: str, seed: int, offset: int) -> None:
    run = RunPaths(ds, variant, seed, root)
    per_case = _per_case(ds, variant, seed, offset)
    run.eval_dir.mkdir(parents=True, exist_ok=True)
    per_case.to_csv(run.per_case, index=False)
    selection = (
        {"rule": "best_val", "epoch": 2, "val_dice": 0.5}
        if ds == "acdc"
        else {"rule": "last", "epoch": 2}
    )
    write_json(
        run.metrics,
        summarize(per_case, NAMES[ds], model_selection=selection, data_source="synthetic"),
    )
    first_ref = variant == "mtunet" and seed == STUDY.seeds[0]
    if ds == "synapse":  # what training writes; ACDC's mtunet runs go without
        info: dict[str, Any] = {"complexity": COMPLEXITY[variant]}
        if first_ref:
            info |= {
                "train_config": {"optimizer": "adam", "lr": 0.001, "weight_decay": 1e-4,
                                 "batch_size": 12, "epochs": 20, "poly_power": 0.9},
                "model_config": {"img_size": [96, 96], "width_mult": 0.25, "win_size": 4,
                                 "gaussian": True, "external_attention": True,
                                 "attention": "local_global"},
            }  # fmt: skip
        write_json(run.train_info, info)
    elif variant != "mtunet":
        write_json(run.train_info, {"complexity": COMPLEXITY[variant]})
    if not first_ref:
        return
    rng = np.random.default_rng(offset)
    gt = np.zeros((3, 32, 32), dtype=np.uint8)
    gt[:, 8:20, 8:20] = 1
    gt[:, 10:14, 22:28] = 2
    np.savez(
        run.eval_dir / "qualitative.npz",
        image=rng.random((3, 32, 32)).astype(np.float32),
        gt=gt,
        pred=np.roll(gt, 2, axis=2),
        case=np.array(["a", "b", "c"]),
        slice=np.array([1, 2, 3]),
    )
    plots = run.live_dir / "plots" / "metrics"
    (plots / "train").mkdir(parents=True, exist_ok=True)
    steps = np.arange(10)
    pd.DataFrame({"timestamp": steps * 1000, "step": steps, "loss": 1.0 / (steps + 1)}).to_csv(
        plots / "train" / "loss.tsv", sep="\t", index=False
    )
    pd.DataFrame({"step": steps, "lr": 1e-4 * (1 - steps / 10) ** 0.9}).to_csv(
        plots / "train" / "lr.tsv", sep="\t", index=False
    )
    if ds == "acdc":
        (plots / "val").mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"step": [4, 9], "dice": [0.3, 0.5]}).to_csv(
            plots / "val" / "dice.tsv", sep="\t", index=False
        )


def _write_study(root: Path, offset: int) -> dict[str, dict[str, Any]]:
    """Every run of both datasets, then the compare stage; returns the comparisons."""
    out = {}
    for ds in NAMES:
        for variant in STUDY.variants:
            for seed in STUDY.seeds:
                _write_run(root, ds, variant, seed, offset)
        baseline = (
            {
                "dsc": 12.5 + offset,
                "rule": "balanced",
                "selected_on": "train",
                "per_class": {n: float(i) for i, n in enumerate(SYN[1:])},
            }
            if ds == "synapse"
            else None
        )
        n = N_CASES[ds]
        info = {
            "class_names": NAMES[ds],
            "splits": {
                "train": {"cases": ["t1", "t2"], "slices": ["x.npz"] * 5},
                "val": {"cases": ["v1"] if ds == "acdc" else [], "slices": []},
                "test": {"cases": [f"case{c:04d}" for c in range(n)], "volumes": []},
            },
        }
        run_comparison(
            STUDY, ds, root, root / "compare" / ds, root / "metrics" / f"{ds}.json", baseline,
            info, nsd_tolerance=2.0 if ds == "synapse" else None,
        )  # fmt: skip
        out[ds] = read_json(root / "compare" / ds / "comparison.json")
    return out


def make_study(root: Path) -> dict[str, Any]:
    """Write the fake study in the new folder ``root`` (a git repository).

    Returns:
        ``root``; the baseline metrics committed at HEAD (``base``); the synapse metrics of the
        ``dvc exp`` ref (``exp``); the workspace metrics (``ws``) and comparisons (``comp``)
        per dataset; the HEAD commit (``head``).
    """
    root.mkdir()
    git(root, "init", "-q")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    _write_study(root, offset=1)
    base = {ds: read_json(root / "metrics" / f"{ds}.json") for ds in NAMES}
    git(root, "add", "params.yaml", "metrics")
    git(root, "commit", "-q", "-m", "baseline")
    head = git(root, "rev-parse", "HEAD")

    # A dvc-exp-like ref: a commit on top of HEAD with other params and metrics, HEAD unchanged.
    exp_params = json.loads(json.dumps(PARAMS))
    exp_params["model"]["win_size"] = 2
    exp_metrics = json.loads(json.dumps(base["synapse"]))
    exp_metrics["dsc"] = base["synapse"]["dsc"] + 5.0
    exp_metrics["hd95"] = base["synapse"]["hd95"] - 1.5
    (root / "params.yaml").write_text(yaml.safe_dump(exp_params))
    write_json(root / "metrics" / "synapse.json", exp_metrics)
    git(root, "add", "params.yaml", "metrics")
    tree = git(root, "write-tree")
    commit = git(root, "commit-tree", tree, "-p", head, "-m", "exp")
    git(root, "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/tidy-newt", commit)
    git(root, "update-ref", "refs/exps/celery/stash", commit)  # bookkeeping ref: ignored
    git(root, "reset", "-q", "HEAD")  # unstage; the workspace files are overwritten below

    # Workspace = the study being reported: other lr, other runs.
    ws_params = json.loads(json.dumps(PARAMS))
    ws_params["train"]["lr"] = 0.001
    (root / "params.yaml").write_text(yaml.safe_dump(ws_params))
    comps = _write_study(root, offset=2)
    ws = {ds: read_json(root / "metrics" / f"{ds}.json") for ds in NAMES}
    return {"root": root, "base": base, "exp": exp_metrics, "ws": ws, "comp": comps, "head": head}


def build(root: Path, **kw: Any) -> Path:
    """``build_report`` of both datasets of the study at ``root`` into ``root/reports``."""
    return build_report(
        datasets=["synapse", "acdc"],
        root=root,
        params_path=root / "params.yaml",
        out_dir=root / "reports",
        repo_dir=root,
        **kw,
    )


def drop_optional_inputs(root: Path) -> None:
    """Remove what the report can do without: ACDC's qualitative slices and per-case table,
    Synapse's training logs, and ACDC's dataset info and surface metrics (an older comparison).
    """
    (RunPaths("acdc", "mtunet", 1, root).eval_dir / "qualitative.npz").unlink()
    (root / "compare" / "acdc" / "per_case.csv").unlink()
    for p in RunPaths("synapse", "mtunet", 1, root).live_dir.rglob("*.tsv"):
        p.unlink()
    comp = read_json(root / "compare" / "acdc" / "comparison.json")
    comp["dataset_info"] = {}
    for entry in comp["variants"].values():
        entry.pop("hd95_monai")
        entry.pop("nsd")
    write_json(root / "compare" / "acdc" / "comparison.json", comp)


def keep_one_model(root: Path) -> dict[str, Any]:
    """Make ACDC's comparison a one-model, one-seed study without a per-case table.

    Returns:
        The remaining ``mtunet`` entry of the comparison.
    """
    comp = read_json(root / "compare" / "acdc" / "comparison.json")
    entry = comp["variants"]["mtunet"]
    entry["seeds"] = [1]
    for stats in (entry["dsc"], entry["hd95"]):
        stats["seed_ci"], stats["n_seeds"] = None, 1
    comp["variants"] = {"mtunet": entry}
    comp["comparisons"] = {"models": {}, "ablations": {}}
    write_json(root / "compare" / "acdc" / "comparison.json", comp)
    (root / "compare" / "acdc" / "per_case.csv").unlink()
    return entry


def make_unet_the_reference(root: Path) -> None:
    """Name ``unet`` Synapse's reference and the ablations' (the recorded tests stay against
    mtunet): the ablations' reference is then not MT-UNet, and its first seed has no logs or
    slices."""
    comp = read_json(root / "compare" / "synapse" / "comparison.json")
    comp["reference"] = comp["ablation_reference"] = "unet"
    write_json(root / "compare" / "synapse" / "comparison.json", comp)
