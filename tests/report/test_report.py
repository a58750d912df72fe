"""build_report on the small fake study of ``fake_study.py`` (2 models + 1 ablation, 2 seeds)
inside a temporary git repo with a fake dvc exp ref."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fake_study import (
    COMPLEXITY,
    N_CASES,
    STUDY,
    SYN,
    build,
    drop_optional_inputs,
    git,
    keep_one_model,
)

from mtunet.fileio import read_json, write_json
from mtunet.report.experiments import flatten, params_diff
from mtunet.report.formatting import verdict
from mtunet.report.published import PUBLISHED
from mtunet.report.report import build_report
from mtunet.report.results import interval_text
from mtunet.report.table_files import to_latex, to_markdown
from mtunet.report.text import machine_text


def _test_row(comp: dict[str, Any], group: str, metric: str, variant: str) -> dict[str, Any]:
    return next(r for r in comp["comparisons"][group][metric] if r["variant"] == variant)


def test_report_contents(repo: dict[str, Any]) -> None:
    root = repo["root"]
    report = build(root)
    assert report == root / "reports" / "report.md"
    text = report.read_text()
    comp = repo["comp"]["synapse"]
    for heading in (
        "### Models",
        "### Differences to the reference (mtunet)",
        "### Ablations",
        "### Surface-distance conventions",
        "### Reference model (mtunet) in detail",
        "### Published numbers on the real data (not this study's runs)",
        "## Experiments",
        "## Protocol",
    ):
        assert heading in text
    # The summary names the reference's mean with both intervals.
    assert f"mtunet mean DSC {interval_text(comp['variants']['mtunet']['dsc'])} %" in text
    assert "] seeds (t, 2 seeds); [" in text and "] cases (t, 4 cases; covers " in text
    assert "synthetic phantoms" in text and "not comparable" in text.lower()
    # Published numbers, in their own table on the real data.
    assert "| MT-UNet (selected on test) | 78.59 | 26.59 | 87.92 | 64.99 |" in text
    assert "| MT-UNet | 90.43 | - | 86.64 | 89.04 | 95.62 |" in text
    assert "The published MT-UNet row was selected on the test cases" in text
    assert "Published numbers on the real Synapse multi-organ CT data" in text
    # Figures exist and are linked relatively.
    for ds in ("synapse", "acdc"):
        for fig in ("forest", "dice_per_case", "dice_per_class", "training", "qualitative"):
            png = root / "reports" / "figures" / f"{ds}_{fig}.png"
            assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"](figures/{ds}_{fig}.png)" in text
    assert "http" not in text  # nothing loaded from the internet
    # What the intervals mean and what 4 (8) cases allow, computed.
    assert "**Reading the intervals.**" in text
    # The case interval's method and its simulated coverage at n, from the comparison.
    rec = comp["variants"]["mtunet"]["dsc"]["case_interval"]
    cov = rec["coverage"]
    assert (
        f"at n = 4 a 95% t interval holds the true mean in {100 * cov['tight']:.0f}% of studies "
        f"with tight scores, {100 * cov['skewed']:.0f}% with skewed scores (10% failure cases)"
        in text
    )
    assert "2 training seeds here: the interval is the mean ± 12.71 standard errors" in text
    assert "drawn at the level 1 − 0.05/m for the m comparisons of its family (Bonferroni; " in text
    assert "models: m = 1; ablations: m = 1)" in text
    assert "excludes 0. So the tables, the forest plot and the verdicts always agree" in text
    # Protocol: the reference model's first seed.
    assert (
        "- Study: models mtunet (reference), unet; ablations no_gaussian (gaussian=False); "
        "seeds 1, 2 (every model and ablation trained once per seed)." in text
    )
    assert "- Model selection (mtunet, seed 1): the last epoch (no test data used" in text
    assert "best mean Dice on the validation split (epoch 2, validation Dice 0.5000)" in text
    assert "train 2 cases, 5 slices; val 0 cases; test 4 cases" in text
    assert "train 2 cases, 5 slices; val 1 cases; test 8 cases" in text
    ws_syn = repo["ws"]["synapse"]
    counts = ws_syn["empty_mask_cases"]
    assert (
        f"ground truth empty {counts['gt_empty']}, prediction empty {counts['pred_empty']}" in text
    )
    assert f"mean {ws_syn['hd95_mm']:.2f} mm" in text
    assert (
        "- Training (mtunet, seed 1): adam lr 0.001, weight decay 0.0001, batch 12, 20 epochs, "
        "poly decay 0.9, loss 0.5 CE + 0.5 soft Dice; input 96x96, width_mult 0.25; differs "
        "from the published setup in lr 0.001 (paper: 0.0001), epochs 20 (paper: 100), "
        "img_size [96, 96] (paper: [224, 224]), width_mult 0.25 (paper: 1.0)." in text
    )
    assert "- Training (mtunet, seed 1): not recorded (no train.json)." in text
    assert "- Surface Dice tolerance: τ = 2 mm." in text
    assert "- Surface Dice tolerance: tolerance not recorded." in text
    assert "## Notes" not in text  # every optional input was there


def test_models_table_matches_comparison(repo: dict[str, Any]) -> None:
    root = repo["root"]
    text = build(root).read_text()
    tables = root / "reports" / "tables"
    comp = repo["comp"]["synapse"]
    res = pd.read_csv(tables / "synapse_models.csv")
    assert list(res["model"][:2]) == ["mtunet", "unet"]  # the reference first
    assert list(res["reference"][:2]) == [True, False]
    for i, name in enumerate(["mtunet", "unet"]):
        row, entry = res.iloc[i], comp["variants"][name]
        assert row["params_m"] == pytest.approx(COMPLEXITY[name]["params"] / 1e6)
        assert row["gflops"] == pytest.approx(COMPLEXITY[name]["gflops"])
        assert row["input"] == "1x1x96x96"
        for metric in ("dsc", "hd95"):
            assert row[metric] == pytest.approx(entry[metric]["mean"])
            assert row[f"{metric}_seed_low"] == pytest.approx(entry[metric]["seed_ci"][0])
            assert row[f"{metric}_seed_high"] == pytest.approx(entry[metric]["seed_ci"][1])
            assert row[f"{metric}_case_low"] == pytest.approx(entry[metric]["case_ci"][0])
            assert row[f"{metric}_case_high"] == pytest.approx(entry[metric]["case_ci"][1])
        assert row["dsc_liver"] == pytest.approx(entry["per_class"]["liver"]["dsc"]["mean"])
        assert (row["n_seeds"], row["n_cases"]) == (2, 4)
        shown = (
            f"| {name}{' (reference)' if i == 0 else ''} | "
            f"{COMPLEXITY[name]['params'] / 1e6:.2f} | {COMPLEXITY[name]['gflops']:.2f} | "
            f"{interval_text(entry['dsc'])} | {interval_text(entry['hd95'])} |"
        )
        assert shown in text
    # The threshold baseline: same data, intensity only.
    label = "intensity threshold baseline (balanced, chosen on training cases)"
    base = res[res["model"] == label].iloc[0]
    assert base["dsc"] == pytest.approx(repo["ws"]["synapse"]["threshold_baseline"]["dsc"])
    assert base[f"dsc_{SYN[2]}"] == pytest.approx(1.0)
    assert "threshold baseline" not in pd.read_csv(tables / "acdc_models.csv")["model"].str.cat()
    # ACDC's mtunet has no train.json: its size is unknown.
    acdc = pd.read_csv(tables / "acdc_models.csv").set_index("model")
    assert math.isnan(acdc.loc["mtunet", "params_m"])
    assert acdc.loc["unet", "gflops"] == pytest.approx(3.5)
    tex = (tables / "synapse_models.tex").read_text()
    assert r"\begin{tabular}" in tex and "seeds (t, 2 seeds); [" in tex
    assert "GFLOPs of one forward pass of one image (1x1x96x96" in text


def test_difference_table_and_verdicts(repo: dict[str, Any]) -> None:
    root = repo["root"]
    text = build(root).read_text()
    tables = root / "reports" / "tables"
    for ds in ("synapse", "acdc"):
        comp = repo["comp"][ds]
        diff = pd.read_csv(tables / f"{ds}_vs_reference.csv")
        assert list(diff["metric"]) == ["dsc", "hd95"]
        assert set(diff["variant"]) == {"unet"}
        for _, row in diff.iterrows():
            test = _test_row(comp, "models", row["metric"], "unet")
            for key in ("diff", "ci_low", "ci_high", "p_value", "p_adjusted", "m"):
                assert row[key] == pytest.approx(test[key])
            assert row["confidence"] == pytest.approx(test["confidence"])
            assert row["method"] == test["method"] == "t_seeds_cases"
            assert row["coverage_tight"] == pytest.approx(test["coverage"]["coverage"]["tight"])
            assert row["n_cases"] == N_CASES[ds]
            assert row["verdict"] == verdict(test, row["metric"] == "dsc")
            # The verdict is the drawn interval's: significant exactly when it excludes 0.
            assert row["significant"] == (not row["ci_low"] <= 0 <= row["ci_high"])
            assert row["significant"] == (row["verdict"] != "not significant")
    # The noisy U-Net is lower in every case and seed: significantly lower DSC on both.
    for ds in ("synapse", "acdc"):
        d = pd.read_csv(tables / f"{ds}_vs_reference.csv").set_index("metric")
        assert d.loc["dsc", "diff"] < 0 and d.loc["dsc", "ci_high"] < 0
        assert d.loc["dsc", "verdict"] == "significantly lower (worse)"
    assert "| unet | DSC (%) |" in text and "| significantly lower (worse) |" in text
    assert "t over seeds and cases, 4 cases; covers " in text
    tex = (tables / "acdc_vs_reference.tex").read_text()
    assert r"Difference [95\% CI]" in tex and "significantly lower (worse)" in tex


def test_ablation_table(repo: dict[str, Any]) -> None:
    root = repo["root"]
    text = build(root).read_text()
    comp = repo["comp"]["acdc"]
    abl = pd.read_csv(root / "reports" / "tables" / "acdc_ablations.csv")
    assert list(abl["variant"]) == ["mtunet", "no_gaussian"]
    assert pd.isna(abl.loc[0, "change"]) and abl.loc[1, "change"] == "gaussian=False"
    assert pd.isna(abl.loc[0, "dsc_diff"])
    row = abl.iloc[1]
    for metric in ("dsc", "hd95"):
        test = _test_row(comp, "ablations", metric, "no_gaussian")
        assert row[f"{metric}_diff"] == pytest.approx(test["diff"])
        assert row[f"{metric}_ci_low"] == pytest.approx(test["ci_low"])
        assert row[f"{metric}_p_adjusted"] == pytest.approx(test["p_adjusted"])
        assert row[f"{metric}_verdict"] == verdict(test, metric == "dsc")
        assert row[metric] == pytest.approx(comp["variants"]["no_gaussian"][metric]["mean"])
    assert row["dsc_verdict"] == "significantly lower (worse)"
    assert "| no_gaussian | gaussian=False |" in text
    assert "| mtunet (full model) | (none) |" in text
    assert "DSC: significantly lower (worse); HD95:" in text
    syn = pd.read_csv(root / "reports" / "tables" / "synapse_ablations.csv")
    verdicts = syn["dsc_verdict"].dropna()
    significant = (syn["dsc_ci_high"] < 0) | (syn["dsc_ci_low"] > 0)
    assert list(verdicts != "not significant") == list(significant[verdicts.index])
    tex = (root / "reports" / "tables" / "acdc_ablations.tex").read_text()
    assert r"$\Delta$DSC [95\% CI]" in tex and r"gaussian=False" in tex


def test_surface_conventions_table(repo: dict[str, Any]) -> None:
    root = repo["root"]
    text = build(root).read_text()
    comp = repo["comp"]["synapse"]
    surf = pd.read_csv(root / "reports" / "tables" / "synapse_surface_metrics.csv")
    assert list(surf["variant"]) == ["mtunet", "unet", "no_gaussian"]
    assert list(surf["kind"]) == ["model", "model", "ablation"]
    for _, row in surf.iterrows():
        entry = comp["variants"][row["variant"]]
        for metric in ("hd95", "hd95_monai", "nsd"):
            assert row[metric] == pytest.approx(entry[metric]["mean"])
            assert row[f"{metric}_case_low"] == pytest.approx(entry[metric]["case_ci"][0])
    assert "NSD (%), τ = 2 mm" in text
    assert "NSD (%), tolerance not recorded" in text  # ACDC's comparison has none
    assert "| no_gaussian (gaussian=False) |" in text


def test_published_table(repo: dict[str, Any]) -> None:
    root = repo["root"]
    build(root)
    tables = root / "reports" / "tables"
    pub = pd.read_csv(tables / "synapse_published.csv").set_index("method")
    assert list(pub.index) == [r["method"] for r in PUBLISHED["synapse"]]
    assert pub.loc["TransUNet", "dsc"] == 77.48
    assert pub.loc["TransUNet", "dsc_pancreas"] == 55.86
    acdc = pd.read_csv(tables / "acdc_published.csv").set_index("method")
    assert acdc.loc["MT-UNet", "dsc_lv"] == 95.62 and pd.isna(acdc.loc["MT-UNet", "hd95"])
    tex = (tables / "synapse_published.tex").read_text()
    assert "Published numbers on the real" in tex
    assert "Not comparable with this study's runs, which are on synthetic phantoms" in tex


def test_figure_data(repo: dict[str, Any]) -> None:
    root = repo["root"]
    build(root)
    for ds in ("synapse", "acdc"):
        comp = repo["comp"][ds]
        scores = pd.read_csv(root / "reports" / "figures" / f"{ds}_dice_per_case.csv")
        assert list(dict.fromkeys(scores["variant"])) == ["mtunet", "unet", "no_gaussian"]
        means = scores.groupby("variant")["dsc"].mean()
        for variant in STUDY.variants:
            assert means[variant] == pytest.approx(comp["variants"][variant]["dsc"]["mean"])
        assert len(scores) == 3 * N_CASES[ds]


def test_report_tables_and_experiments(repo: dict[str, Any]) -> None:
    root = repo["root"]
    build(root)
    tables = root / "reports" / "tables"
    for ds in ("synapse", "acdc"):
        for kind in ("models", "vs_reference", "ablations", "surface_metrics", "published",
                     "per_class"):  # fmt: skip
            assert (tables / f"{ds}_{kind}.csv").is_file()
            tex = (tables / f"{ds}_{kind}.tex").read_text()
            assert r"\begin{tabular}" in tex and r"\bottomrule" in tex
    pc = pd.read_csv(tables / "synapse_per_class.csv").set_index("class")
    assert pc.loc["liver", "dsc"] == pytest.approx(
        repo["ws"]["synapse"]["per_class"]["liver"]["dsc"]
    )

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
    return git(
        repo["root"],
        "rev-parse",
        "--short=7",
        "refs/exps/" + repo["head"][:2] + "/" + repo["head"][2:] + "/tidy-newt",
    )


def test_report_is_deterministic(repo: dict[str, Any]) -> None:
    root = repo["root"]
    build(root)
    first = {
        p.relative_to(root): p.read_bytes() for p in (root / "reports").rglob("*") if p.is_file()
    }
    build(root)
    second = {
        p.relative_to(root): p.read_bytes() for p in (root / "reports").rglob("*") if p.is_file()
    }
    assert first.keys() == second.keys() and len(first) == 39
    assert first == second


def test_missing_optional_inputs_give_notes(repo: dict[str, Any]) -> None:
    root = repo["root"]
    drop_optional_inputs(root)
    text = build(root).read_text()
    assert "## Notes" in text
    assert "qualitative slices" in text and "per-case table" in text
    assert "no DVCLive training logs" in text and "no surface-metric conventions table" in text
    for name in ("acdc_qualitative.png", "acdc_dice_per_case.png", "synapse_training.png"):
        assert not (root / "reports" / "figures" / name).exists()
    assert not (root / "reports" / "tables" / "acdc_surface_metrics.csv").exists()
    assert "Split: not available" in text
    # Without the per-case table the variant order comes from the comparison lists.
    models = pd.read_csv(root / "reports" / "tables" / "acdc_models.csv")
    assert list(models["model"]) == ["mtunet", "unet"]


def test_missing_inputs_fail_clearly(repo: dict[str, Any]) -> None:
    root = repo["root"]
    (root / "compare" / "acdc" / "comparison.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"comparison of dataset 'acdc' not found"):
        build(root)
    (root / "compare" / "acdc" / "comparison.json").write_text("{}")
    with pytest.raises(ValueError, match="not a comparison file"):
        build(root)
    (root / "metrics" / "acdc.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"acdc\.json: metrics file for dataset 'acdc'"):
        build(root)
    (root / "metrics" / "acdc.json").write_text("{}")
    with pytest.raises(ValueError, match="not a metrics file"):
        build(root)
    with pytest.raises(ValueError, match="at least one dataset"):
        build_report([], root, root / "params.yaml", root / "reports")


def test_bad_report_params_fail_clearly(repo: dict[str, Any]) -> None:
    root = repo["root"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["report"]["dpi"] = 5
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match=r"report.dpi: must lie in \[20, 600\]"):
        build(root)
    params["report"] = {"colour": "red"}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match="report: unknown key"):
        build(root)


def test_no_git_repo_shows_workspace_only(repo: dict[str, Any], tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    for part in ("params.yaml", "metrics", "compare", "models", "eval", "dvclive"):
        src = repo["root"] / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / part)
    report = build_report(["acdc"], root, root / "params.yaml", root / "reports", root)
    text = report.read_text()
    assert "No git commit found" in text
    exp = pd.read_csv(root / "reports" / "tables" / "experiments.csv")
    assert list(exp["experiment"]) == ["workspace (this run)"]


def test_single_model_study(repo: dict[str, Any]) -> None:
    """One model, one seed, no ablations: case intervals only, no comparison tables."""
    root = repo["root"]
    entry = keep_one_model(root)
    text = build_report(["acdc"], root, root / "params.yaml", root / "reports", root).read_text()
    assert "The study has one model; there is nothing to compare it with." in text
    assert "### Ablations" not in text
    assert not (root / "reports" / "figures" / "acdc_forest.png").exists()
    shown = interval_text(entry["dsc"])
    cov = entry["dsc"]["case_interval"]["coverage"]
    mark = "*" if entry["dsc"]["case_interval"]["below_target"] else ""
    tail = "/".join(f"{100 * cov[f]:.0f}" for f in ("tight", "skewed", "bimodal"))
    assert shown.endswith(f" cases (t, 8 cases; covers {tail} %{mark})") and "seeds" not in shown
    assert f"| mtunet (reference) | - | - | {shown} |" in text


def test_verdict_wording() -> None:
    """The words follow the comparison's recorded verdict (its interval excludes 0)."""
    row = {"diff": -2.0, "ci_low": -3.0, "ci_high": -1.0, "verdict": "lower"}
    assert verdict(row, higher_is_better=True) == "significantly lower (worse)"
    assert verdict(row, higher_is_better=False) == "significantly lower (better)"
    assert verdict({**row, "diff": 2.0, "verdict": "higher"}, True) == (
        "significantly higher (better)"
    )
    assert verdict({**row, "verdict": "none"}, True) == "not significant"
    assert verdict({"diff": -2.0}, True) == "not significant"  # no verdict recorded
    assert verdict(None, True) == "not significant"
    assert interval_text({"mean": 91.3, "seed_ci": [90.1, 92.4], "case_ci": [88.0, 94.1]}) == (
        "91.30 [90.10, 92.40] seeds; [88.00, 94.10] cases"
    )
    record = {
        "method": "t",
        "n": 12,
        "confidence": 0.95,
        "simulated": True,
        "coverage": {"tight": 0.948, "skewed": 0.799, "bimodal": 0.938},
        "below_target": True,
    }
    seeds = {"method": "t", "n": 3, "simulated": False, "coverage": {"normal": 0.95}}
    entry = {
        "mean": 91.3,
        "seed_ci": [90.1, 92.4],
        "case_ci": [88.0, 94.1],
        "seed_interval": seeds,
        "case_interval": record,
    }
    assert interval_text(entry) == (
        "91.30 [90.10, 92.40] seeds (t, 3 seeds); [88.00, 94.10] cases (t, 12 cases; covers "
        "95/80/94 %*)"
    )
    met = {**entry, "case_interval": {**record, "below_target": False}}
    assert interval_text(met).endswith("covers 95/80/94 %)")
    assert interval_text({"mean": None}) == "-"


def test_report_package_import_is_light() -> None:
    """The compare stage imports mtunet.report.stats; that must not load the report code."""
    code = (
        "import sys, mtunet.report.stats; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib'; "
        "assert 'mtunet.report.report' not in sys.modules, 'report'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_helpers() -> None:
    flat = flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"})
    assert flat == {"a.b": 1, "a.c": "[1, 2]", "d": "x"}
    assert params_diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": (2, 3), "c": (None, 4)}
    df = pd.DataFrame({"name": ["a_b", "c|d"], "v": [1.234, float("nan")]})
    md = to_markdown(df)
    assert "| a_b | 1.23 |" in md and "| c\\|d | - |" in md
    tex = to_latex(df, "cap 50% Δ", "tab:x")
    assert r"a\_b & 1.23 \\" in tex and r"cap 50\% $\Delta$" in tex and "{lr}" in tex


def test_machine_text_says_what_is_reproducible() -> None:
    machine = {
        "cpu": "Some CPU",
        "vendor": "AuthenticAMD",
        "cores": 2,
        "threads": 2,
        "torch": "2.13.0",
        "aten_capability": "AVX2",
        "mkl_branch": "AUTO",
    }
    portable = {"device": "cpu", "machine": machine, "train_config": {"cpu_kernels": "portable"}}
    text = machine_text(portable)
    assert "Some CPU (AuthenticAMD), 2 cores, 2 threads, torch 2.13.0" in text
    assert "portable kernels (ATen AVX2, MKL branch AUTO): bit for bit on x86-64 CPUs of " in text
    assert "this vendor, AVX-512 or AVX2 only, with the same torch and 2 threads" in text
    assert "another vendor, another thread count or another architecture" in text
    # train.threads fixes the count: any machine of the vendor, whatever its cores.
    pinned = {**portable, "train_config": {"cpu_kernels": "portable", "threads": 2}}
    text = machine_text(pinned)
    assert "with the same torch (2 threads, fixed by train.threads: any core count)" in text
    assert "another vendor or another architecture trains other weights" in text
    compatible = {**portable, "train_config": {"cpu_kernels": "compatible"}}
    assert "bit for bit on Intel and AMD x86-64 CPUs" in machine_text(compatible)
    native = {**portable, "machine": {**machine, "aten_capability": "AVX512"}}
    assert "native kernels (ATen AVX512" in machine_text(native)
    assert "the same CPU model with the same torch and 2 threads only" in machine_text(native)
    # Asked for portable, but the process had computed before the pin: reported as native.
    assert "native kernels (ATen AVX512" in machine_text(
        {**native, "train_config": {"cpu_kernels": "portable"}}
    )
    # An older train.json without vendor, threads or MKL branch still reads.
    old = {
        **portable,
        "machine": {"cpu": "X", "cores": 4, "torch": "2.2", "aten_capability": "AVX2"},
    }
    assert "X, 4 cores, torch 2.2; portable kernels (ATen AVX2)" in machine_text(old)
    assert "same GPU model" in machine_text({**portable, "device": "cuda:0"})
    assert machine_text(None) == "not recorded"


def _spread_doc(root: Path, digest: str, held: bool) -> dict[str, Any]:
    """A rerun_spread.json for the fake study: every mean moved by +0.5 (other vendor) and
    -1.0 (1 thread); every verdict held, or one changed."""
    reruns: dict[str, Any] = {}
    committed: dict[str, Any] = {}
    for rerun, move in (("other vendor", 0.5), ("1 thread", -1.0)):
        results = {}
        for ds in ("synapse", "acdc"):
            comp = read_json(root / "compare" / ds / "comparison.json")
            committed[ds] = {}
            variants = {
                name: {m: {"committed": e[m]["mean"], "rerun": e[m]["mean"] + move, "move": move}
                       for m in ("dsc", "hd95")}
                for name, e in comp["variants"].items()
            }  # fmt: skip
            keys = [f"{g}/{m}/{r['variant']}" for g, by in comp["comparisons"].items()
                    for m, rows in by.items() for r in rows]  # fmt: skip
            comparisons = {
                k: {"same": held or not (rerun == "1 thread" and k == "models/dsc/unet")}
                for k in keys
            }
            results[ds] = {"variants": variants, "comparisons": comparisons}
        reruns[rerun] = {"results": results}
    return {"study_digest": digest, "committed": committed, "reruns": reruns}


def test_measured_rerun_spread_is_shown_for_its_own_configuration(repo: dict[str, Any]) -> None:
    """The rerun spread appears when it was measured on this params.yaml, and only then."""
    from mtunet.config import load_params
    from mtunet.report.report import SPREAD_FILE
    from mtunet.report.spread import study_digest

    root = repo["root"]
    digest = study_digest(load_params(root / "params.yaml"))
    write_json(root / SPREAD_FILE, _spread_doc(root, digest, held=True))
    text = build(root).read_text()
    assert text.count("### Reruns on other machines and seeds") == 2
    assert "| mtunet | 89.97 | -1.00 (1 thread), +0.50 (other vendor) | 6.06 |" in text
    assert "_Every verdict against the reference held in every rerun._" in text
    table = pd.read_csv(root / "reports" / "tables" / "synapse_rerun_spread.csv")
    assert list(table["variant"]) == ["mtunet", "unet", "no_gaussian"]
    assert list(table["dsc_largest_move"]) == [1.0, 1.0, 1.0]
    assert list(table["verdicts_held"].iloc[1:]) == [True, True]
    assert "how far reruns and another seed moved these numbers is measured below" in text
    write_json(root / SPREAD_FILE, _spread_doc(root, digest, held=False))
    text = build(root).read_text()
    assert "_Verdicts that changed in a rerun, to be read as fragile (a verdict from one" in text
    assert "rather than the methods): `models/dsc/unet` (1 thread)._" in text
    assert "| changed |" in text
    # Measured on other parameters: not this study's spread.
    write_json(root / SPREAD_FILE, _spread_doc(root, "0" * 64, held=True))
    text = build(root).read_text()
    assert "### Reruns on other machines and seeds" not in text
    assert "the seed interval says how far" in text


def test_study_digest_ignores_settings_that_change_no_number() -> None:
    """A measurement stays this study's when only how training runs changed (checkpoints,
    loader workers), and stops being it when anything that decides a number changed."""
    from mtunet.config import TRAIN_RUNTIME_FIELDS
    from mtunet.report.spread import study_digest

    params = {
        "datasets": {"acdc": {"raw_dir": "data/raw/acdc"}},
        "model": {"win_size": 4},
        "train": {"epochs": 50, "threads": 2, "checkpoint_every": 1, "num_workers": "auto"},
        "study": {"seeds": [1234]},
        "evaluate": {"batch_size": 16},
        "resources": {"train": {"cpus": 2}},
    }
    digest = study_digest(params)
    assert "checkpoint_every" in TRAIN_RUNTIME_FIELDS
    runtime = {**params, "train": {**params["train"], "checkpoint_every": 10, "num_workers": 0}}
    assert study_digest(runtime) == digest
    assert study_digest({**params, "resources": {"train": {"cpus": 8}}}) == digest
    for section, change in (("train", {"threads": 1}), ("train", {"epochs": 25})):
        changed = {**params, section: {**params[section], **change}}
        assert study_digest(changed) != digest, change
