"""build_report on small synthetic inputs inside a temporary git repo with a fake dvc exp ref."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mtunet.fileio import write_json
from mtunet.metrics import case_metrics, summarize
from mtunet.report import build_report
from mtunet.report.experiments import flatten, params_diff
from mtunet.report.tables import to_latex, to_markdown

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
PARAMS: dict[str, Any] = {
    "datasets": {"synapse": {}, "acdc": {}},
    "model": {"win_size": 7, "width_mult": 0.25},
    "train": {"epochs": 2, "lr": 0.0001},
    "report": {"max_qualitative": 2, "dpi": 40},
}


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _per_case(names: list[str], seed: int, n_cases: int = 3) -> pd.DataFrame:
    """Per-case rows from case_metrics on random blob masks (classes sometimes missing)."""
    rng = np.random.default_rng(seed)
    rows = []
    nc = len(names)
    for c in range(n_cases):
        gt = np.zeros((4, 24, 24), dtype=np.uint8)
        for k in range(1, nc):
            z, y, x = rng.integers(0, 4), rng.integers(2, 20), rng.integers(2, 20)
            gt[z : z + 2, y : y + 4, x : x + 4] = k
        noise = rng.random(gt.shape) < 0.1
        pred = np.where(noise, rng.integers(0, nc, gt.shape), gt).astype(np.uint8)
        for r in case_metrics(pred, gt, nc, spacing=(2.0, 0.8, 0.8)):
            rows.append({"case": f"case{c:04d}", "class_name": names[r["class_id"]], **r})
    cols = ["case", "class_id", "class_name", "dice", "hd95", "hd95_mm", "convention"]
    return pd.DataFrame(rows)[cols]


def _write_dataset(root: Path, ds: str, names: list[str], seed: int) -> dict[str, Any]:
    per_case = _per_case(names, seed)
    selection = (
        {"rule": "best_val", "epoch": 2, "val_dice": 0.5}
        if ds == "acdc"
        else {"rule": "last", "epoch": 2}
    )
    metrics = summarize(per_case, names, model_selection=selection, data_source="synthetic")
    if ds == "synapse":  # what evaluate adds: the intensity-only bar on the same data
        metrics["threshold_baseline"] = {
            "dsc": 12.5 + seed,
            "rule": "balanced",
            "selected_on": "train",
            "per_class": {n: float(i) for i, n in enumerate(names[1:])},
        }
    write_json(root / "metrics" / f"{ds}.json", metrics)
    if ds == "synapse":  # what training writes (resolved configs); ACDC goes without
        write_json(
            root / "models" / ds / "train.json",
            {
                "train_config": {"optimizer": "adam", "lr": 0.001, "weight_decay": 1e-4,
                                 "batch_size": 12, "epochs": 20, "poly_power": 0.9},
                "model_config": {"img_size": [96, 96], "width_mult": 0.25, "win_size": 4,
                                 "gaussian": True, "external_attention": True,
                                 "attention": "local_global"},
            },
        )  # fmt: skip
    (root / "eval" / ds).mkdir(parents=True, exist_ok=True)
    per_case.to_csv(root / "eval" / ds / "per_case.csv", index=False)
    rng = np.random.default_rng(seed)
    gt = np.zeros((3, 32, 32), dtype=np.uint8)
    gt[:, 8:20, 8:20] = 1
    gt[:, 10:14, 22:28] = 2
    pred = np.roll(gt, 2, axis=2)
    np.savez(
        root / "eval" / ds / "qualitative.npz",
        image=rng.random((3, 32, 32)).astype(np.float32),
        gt=gt,
        pred=pred,
        case=np.array(["a", "b", "c"]),
        slice=np.array([1, 2, 3]),
    )
    plots = root / "dvclive" / ds / "plots" / "metrics"
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
    manifest = {
        "name": ds,
        "source": "raw",
        "splits": {
            "train": {"cases": ["t1", "t2"], "slices": ["x.npz"] * 5},
            "val": {"cases": ["v1"] if ds == "acdc" else [], "slices": []},
            "test": {"cases": ["case0000", "case0001", "case0002"], "volumes": []},
        },
    }
    write_json(root / "data" / "processed" / ds / "dataset.json", manifest)
    return metrics


@pytest.fixture
def repo(tmp_path: Path) -> dict[str, Any]:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    base = {
        ds: _write_dataset(root, ds, names, seed)
        for ds, names, seed in (("synapse", SYN, 1), ("acdc", ACDC, 2))
    }
    _git(root, "add", "params.yaml", "metrics")
    _git(root, "commit", "-q", "-m", "baseline")
    head = _git(root, "rev-parse", "HEAD")

    # A dvc-exp-like ref: a commit on top of HEAD with other params and metrics, HEAD unchanged.
    exp_params = json.loads(json.dumps(PARAMS))
    exp_params["model"]["win_size"] = 2
    exp_metrics = json.loads(json.dumps(base["synapse"]))
    exp_metrics["dsc"] = base["synapse"]["dsc"] + 5.0
    exp_metrics["hd95"] = base["synapse"]["hd95"] - 1.5
    (root / "params.yaml").write_text(yaml.safe_dump(exp_params))
    write_json(root / "metrics" / "synapse.json", exp_metrics)
    _git(root, "add", "params.yaml", "metrics")
    tree = _git(root, "write-tree")
    commit = _git(root, "commit-tree", tree, "-p", head, "-m", "exp")
    _git(root, "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/tidy-newt", commit)
    _git(root, "update-ref", "refs/exps/celery/stash", commit)  # bookkeeping ref: ignored
    _git(root, "reset", "-q", "HEAD")  # unstage; the workspace files are overwritten below

    # Workspace = the run being reported: other lr, other metrics.
    ws_params = json.loads(json.dumps(PARAMS))
    ws_params["train"]["lr"] = 0.001
    (root / "params.yaml").write_text(yaml.safe_dump(ws_params))
    ws = {
        ds: _write_dataset(root, ds, names, seed)
        for ds, names, seed in (("synapse", SYN, 3), ("acdc", ACDC, 4))
    }
    return {"root": root, "base": base, "exp": exp_metrics, "ws": ws, "head": head}


def _build(root: Path, **kw: Any) -> Path:
    return build_report(
        datasets=["synapse", "acdc"],
        metrics_dir=root / "metrics",
        eval_dir=root / "eval",
        live_dir=root / "dvclive",
        params_path=root / "params.yaml",
        out_dir=root / "reports",
        repo_dir=root,
        **kw,
    )


def test_report_contents(repo: dict[str, Any]) -> None:
    root = repo["root"]
    report = _build(root)
    assert report == root / "reports" / "report.md"
    text = report.read_text()
    ws_syn = repo["ws"]["synapse"]
    # This run's numbers beside the published rows, labelled with the data used.
    assert (
        f"| MT-UNet (this run) | synthetic phantoms | {ws_syn['dsc']:.2f} | {ws_syn['hd95']:.2f} |"
        in text
    )
    assert (
        "| MT-UNet (selected on test) | published, real data | 78.59 | 26.59 | 87.92 | 64.99 |"
        in text
    )
    assert "The published MT-UNet row was selected on the test cases" in text
    assert "| MT-UNet | published, real data | 90.43 | - | 86.64 | 89.04 | 95.62 |" in text
    assert "synthetic phantoms" in text and "not comparable" in text
    # Figures exist and are linked relatively.
    for ds in ("synapse", "acdc"):
        for fig in ("dice_per_case", "training", "qualitative"):
            png = root / "reports" / "figures" / f"{ds}_{fig}.png"
            assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"](figures/{ds}_{fig}.png)" in text
    assert "http" not in text  # nothing loaded from the internet
    # Protocol.
    assert "## Protocol" in text
    assert "the last epoch (no test data used for selection) (epoch 2)" in text
    assert "best mean Dice on the validation split (epoch 2, validation Dice 0.5000)" in text
    assert "train 2 cases, 5 slices; val 0 cases; test 3 cases" in text
    counts = ws_syn["empty_mask_cases"]
    assert (
        f"ground truth empty {counts['gt_empty']}, prediction empty {counts['pred_empty']}" in text
    )
    assert f"mean {ws_syn['hd95_mm']:.2f} mm" in text
    # Where the run's training differs from the published setup, and where it is unknown.
    assert (
        "- Training: adam lr 0.001, weight decay 0.0001, batch 12, 20 epochs, poly decay 0.9, "
        "loss 0.5 CE + 0.5 soft Dice; input 96x96, width_mult 0.25; differs from the "
        "published setup in lr 0.001 (paper: 0.0001), epochs 20 (paper: 100), img_size [96, 96] "
        "(paper: [224, 224]), width_mult 0.25 (paper: 1.0)." in text
    )
    assert "- Training: not recorded (no train.json)." in text
    assert "## Notes" not in text  # every optional input was there


def test_report_tables_and_experiments(repo: dict[str, Any]) -> None:
    root = repo["root"]
    _build(root)
    tables = root / "reports" / "tables"
    for stem in (
        "synapse_results",
        "synapse_per_class",
        "acdc_results",
        "acdc_per_class",
        "experiments",
    ):
        assert (tables / f"{stem}.csv").is_file()
        tex = (tables / f"{stem}.tex").read_text()
        assert r"\begin{tabular}" in tex and r"\bottomrule" in tex
    res = pd.read_csv(tables / "synapse_results.csv")
    ws = repo["ws"]["synapse"]
    assert res.loc[0, "dsc"] == pytest.approx(ws["dsc"])
    assert res.loc[0, "liver"] == pytest.approx(ws["per_class"]["liver"]["dsc"])
    label = "intensity threshold baseline (balanced, chosen on training cases)"
    base = res[res["method"] == label].iloc[0]
    assert base["data"] == "synthetic phantoms"
    assert base["dsc"] == pytest.approx(ws["threshold_baseline"]["dsc"])
    assert base[SYN[2]] == pytest.approx(1.0)
    assert "threshold baseline" not in pd.read_csv(tables / "acdc_results.csv")["method"].str.cat()
    pub = res[res["method"] == "TransUNet"].iloc[0]
    assert (pub["data"], pub["dsc"], pub["pancreas"]) == ("published, real data", 77.48, 55.86)
    assert "published, real data" in (tables / "synapse_results.tex").read_text()

    exp = pd.read_csv(tables / "experiments.csv").set_index("experiment")
    assert list(exp.index) == ["baseline (HEAD)", "tidy-newt", "workspace (this run)"]
    base, fake = repo["base"]["synapse"], repo["exp"]
    assert exp.loc["baseline (HEAD)", "synapse_dsc_delta"] == pytest.approx(0.0)
    assert exp.loc["tidy-newt", "changed_params"] == "model.win_size: 7 -> 2"
    assert exp.loc["tidy-newt", "synapse_dsc"] == pytest.approx(fake["dsc"])
    assert exp.loc["tidy-newt", "synapse_dsc_delta"] == pytest.approx(5.0)
    assert exp.loc["tidy-newt", "synapse_hd95_delta"] == pytest.approx(-1.5)
    assert exp.loc["tidy-newt", "acdc_dsc_delta"] == pytest.approx(0.0)
    assert exp.loc["workspace (this run)", "changed_params"] == "train.lr: 0.0001 -> 0.001"
    assert exp.loc["workspace (this run)", "synapse_dsc_delta"] == pytest.approx(
        repo["ws"]["synapse"]["dsc"] - base["dsc"]
    )
    assert exp.loc["workspace (this run)", "rev"] == "workspace"
    text = (root / "reports" / "report.md").read_text()
    assert (
        f"| tidy-newt | {_short(repo)} | model.win_size: 7 -> 2 | {fake['dsc']:.2f} | +5.00 |"
        in text
    )


def _short(repo: dict[str, Any]) -> str:
    return _git(
        repo["root"],
        "rev-parse",
        "--short=7",
        "refs/exps/" + repo["head"][:2] + "/" + repo["head"][2:] + "/tidy-newt",
    )


def test_report_is_deterministic(repo: dict[str, Any]) -> None:
    root = repo["root"]
    _build(root)
    first = {
        p.relative_to(root): p.read_bytes() for p in (root / "reports").rglob("*") if p.is_file()
    }
    _build(root)
    second = {
        p.relative_to(root): p.read_bytes() for p in (root / "reports").rglob("*") if p.is_file()
    }
    assert first.keys() == second.keys() and len(first) >= 17
    assert first == second


def test_missing_optional_inputs_give_notes(repo: dict[str, Any]) -> None:
    root = repo["root"]
    (root / "eval" / "acdc" / "qualitative.npz").unlink()
    (root / "eval" / "acdc" / "per_case.csv").unlink()
    (root / "data" / "processed" / "acdc" / "dataset.json").unlink()
    for p in (root / "dvclive" / "synapse").rglob("*.tsv"):
        p.unlink()
    text = _build(root).read_text()
    assert "## Notes" in text
    assert "qualitative slices" in text and "per-case table" in text
    assert "acdc manifest" in text and "no DVCLive training logs" in text
    assert not (root / "reports" / "figures" / "acdc_qualitative.png").exists()
    assert "Split: not available" in text


def test_missing_metrics_fails_clearly(repo: dict[str, Any]) -> None:
    root = repo["root"]
    (root / "metrics" / "acdc.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"acdc\.json: metrics file for dataset 'acdc'"):
        _build(root)
    (root / "metrics" / "acdc.json").write_text("{}")
    with pytest.raises(ValueError, match="not a metrics file"):
        _build(root)


def test_bad_report_params_fail_clearly(repo: dict[str, Any]) -> None:
    root = repo["root"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["report"]["dpi"] = 5
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match=r"report.dpi: must lie in \[20, 600\]"):
        _build(root)
    params["report"] = {"colour": "red"}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match="report: unknown key"):
        _build(root)


def test_no_git_repo_shows_workspace_only(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    _write_dataset(root, "acdc", ACDC, 5)
    report = build_report(
        ["acdc"],
        root / "metrics",
        root / "eval",
        root / "dvclive",
        root / "params.yaml",
        root / "reports",
        root,
    )
    text = report.read_text()
    assert "No git commit found" in text
    exp = pd.read_csv(root / "reports" / "tables" / "experiments.csv")
    assert list(exp["experiment"]) == ["workspace (this run)"]


def test_helpers() -> None:
    flat = flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"})
    assert flat == {"a.b": 1, "a.c": "[1, 2]", "d": "x"}
    assert params_diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": (2, 3), "c": (None, 4)}
    df = pd.DataFrame({"name": ["a_b", "c|d"], "v": [1.234, float("nan")]})
    md = to_markdown(df)
    assert "| a_b | 1.23 |" in md and "| c\\|d | - |" in md
    tex = to_latex(df, "cap 50%", "tab:x")
    assert r"a\_b & 1.23 \\" in tex and r"cap 50\%" in tex and "{lr}" in tex


def test_machine_text_says_what_is_reproducible() -> None:
    from mtunet.report.report import _machine_text

    machine = {"cpu": "Some CPU", "cores": 2, "torch": "2.13.0", "aten_capability": "AVX2"}
    portable = {"device": "cpu", "machine": machine, "train_config": {"cpu_kernels": "portable"}}
    assert "portable AVX2 kernels" in _machine_text(portable)
    assert "Some CPU, 2 cores" in _machine_text(portable)
    native = {**portable, "machine": {**machine, "aten_capability": "AVX512"}}
    assert "native AVX512 kernels" in _machine_text(native)
    # Asked for portable, but the process had computed before the pin: reported as native.
    assert "native AVX512" in _machine_text(
        {**native, "train_config": {"cpu_kernels": "portable"}}
    )
    assert "same GPU" in _machine_text({**portable, "device": "cuda:0"})
    assert _machine_text(None) == "not recorded"
