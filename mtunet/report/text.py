"""The report's words that are not tables: captions, protocol facts, and what the study's
size allows the tests to find (:class:`~mtunet.report.model.Sampling`).

The captions are also the LaTeX captions of the table files, so they are made here rather
than in the template; the template holds the headings and the prose around them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scipy.stats import t as student_t

from mtunet.report.formatting import fmt
from mtunet.report.model import Sampling
from mtunet.report.published import PAPER_SETUP
from mtunet.report.results import Results
from mtunet.report.spread import RerunSpread


def selection_text(sel: Mapping[str, Any] | None, train_info: Mapping[str, Any] | None) -> str:
    """How the checkpoint was chosen: the metrics file's ``model_selection`` or train.json's."""
    sel = dict(sel or {})
    if not sel and train_info:
        sel = dict(train_info.get("selection") or {})
    if not sel:
        return "not recorded"
    rule = sel.get("rule")
    words = {
        "last": "the last epoch (no test data used for selection)",
        "best_val": "the epoch with the best mean Dice on the validation split",
    }.get(str(rule), f"rule {rule!r}")
    extra = []
    if sel.get("epoch") is not None:
        extra.append(f"epoch {sel['epoch']}")
    if isinstance(sel.get("val_dice"), (int, float)):
        extra.append(f"validation Dice {fmt(sel['val_dice'], 4)}")
    return words + (f" ({', '.join(extra)})" if extra else "")


def split_text(manifest: Mapping[str, Any] | None) -> str:
    """The split's sizes and test cases, from the comparison's ``dataset_info``."""
    if not manifest or not manifest.get("splits"):
        return "not available (the comparison records no dataset_info)"
    splits = manifest.get("splits") or {}
    parts = []
    for name in ("train", "val", "test"):
        s = splits.get(name) or {}
        cases = s.get("cases") or []
        n_slices = len(s.get("slices") or [])
        extra = f", {n_slices} slices" if n_slices and name != "test" else ""
        parts.append(f"{name} {len(cases)} cases{extra}")
    test = (splits.get("test") or {}).get("cases") or []
    shown = ", ".join(str(c) for c in test[:20]) + (" ..." if len(test) > 20 else "")
    return "; ".join(parts) + (f" (test: {shown})" if test else "")


def sampling(
    comparison: Mapping[str, Any], res: Results, spread: RerunSpread | None = None
) -> Sampling:
    """The seeds, units and intervals behind the study's numbers, and what they allow."""
    ref = comparison["variants"][res.reference]
    dsc = ref.get("dsc") or {}
    n_seeds = dsc.get("n_seeds") or len(ref.get("seeds") or [])
    targets = (comparison.get("coverage_simulation") or {}).get("targets") or {}
    tests = comparison.get("comparisons") or {}
    m = {
        group: int(rows[0]["m"])
        for group in ("models", "ablations")
        for rows in list((tests.get(group) or {}).values())[:1]
        if rows and isinstance(rows[0].get("m"), int)
    }
    n_units = comparison.get("n_units", dsc.get("n_cases"))
    return Sampling(
        level=res.level,
        n_seeds=n_seeds,
        t_quantile=(
            float(student_t.ppf(0.5 + res.level / 200.0, n_seeds - 1)) if n_seeds >= 2 else None
        ),
        unit=str(comparison.get("unit") or "case"),
        n_units=int(n_units) if isinstance(n_units, int) else None,
        n_test_cases=comparison.get("n_test_cases"),
        mean_interval=res.variants[res.reference].dsc.cases,
        targets={f: float(t["coverage"]) for f, t in targets.items()},
        target_from={f: int(t["from_n"]) for f, t in targets.items()},
        m=m,
        alpha=float(comparison.get("alpha") or 1.0 - res.confidence),
        spread=spread,
    )


def interval_caption(res: Results) -> str:
    """What the intervals of every mean are, and how to read their annotation."""
    return (
        f"Means with {res.level}% intervals: `seeds` = Student t over the per-seed means (two "
        "seeds or more; exact when they are normally distributed), `cases` = over the test "
        "cases (the patients, where a patient has several volumes), with its method, the "
        "number of cases and its simulated coverage (%) at that number on tight / skewed "
        "(10 % failures) / bimodal Dice-like scores; * = below a coverage target "
        "(docs/statistics.md)."
    )


def complexity_caption(res: Results) -> str:
    """What the size columns mean, with the input size the FLOPs were counted on."""
    inputs = {res.variants[m].input for m in res.models if res.variants[m].input}
    if not inputs:
        return "Parameters and GFLOPs were not recorded (`-`)."
    size = inputs.pop() if len(inputs) == 1 else "the run's input size"
    return (
        f"Parameters in millions; GFLOPs of one forward pass of one image ({size}, the "
        "run's input size; torch's FLOP counter, 2 FLOPs per multiply-add)."
    )


def models_caption(title: str, label: str, res: Results, baseline: bool) -> str:
    """Caption of the models table."""
    return (
        f"{title}, {label}: the study's models (reference {res.reference} first). "
        f"{interval_caption(res)} DSC per class: means. {complexity_caption(res)}"
        + (" The threshold baseline uses image intensity only, on the same data." if baseline
           else "")
    )  # fmt: skip


def differences_caption(title: str, res: Results) -> str:
    """Caption of the table of differences to the reference."""
    return (
        f"{title}: each model minus {res.reference}, paired on the test cases (with several "
        "seeds the interval carries the seeds' spread too). Each interval is drawn at the "
        "Bonferroni-adjusted level of its family (the models' comparisons of one metric), "
        "with its method, cases and simulated coverage; p is the interval's own (the paired t "
        "test it inverts), the Bonferroni p that times the family's size; significant exactly "
        "when the interval excludes 0."
    )


def ablations_caption(title: str, res: Results) -> str:
    """Caption of the ablation table."""
    full = res.ablation_reference
    return (
        f"{title}: ablations of {full} (each changes the model section as shown). "
        f"{interval_caption(res)} Δ = ablation minus {full}, paired on the test "
        "cases, with its interval at the Bonferroni-adjusted level of the ablations' family per "
        "metric (significant exactly when it excludes 0)."
    )


def spread_caption(title: str, spread: RerunSpread) -> str:
    """Caption of the rerun-spread table."""
    return (
        f"{title}: the committed means, and how far each rerun of the whole study moved them "
        "(" + ", ".join(spread.reruns) + "; DSC in % points, HD95 in voxels), and whether every "
        "verdict against the reference held. A rerun on a simulated other machine (another CPU "
        "vendor; a machine that starts torch with 1 or 4 threads) or with every training seed "
        "plus one (another seed), measured by benchmarks/rerun_spread.py on this "
        "configuration."
    )


def surface_caption(title: str, res: Results, nsd: str) -> str:
    """Caption of the surface-distance conventions table."""
    return (
        f"{title}: one segmentation, three surface metrics. HD95 medpy: the 95th percentile "
        "of both directed surface distances pooled, in voxels (the published convention); "
        "HD95 MONAI: the larger of the two directed 95th percentiles (never smaller than "
        f"medpy's); NSD: normalised surface Dice, the share of surface voxels within the "
        f"tolerance ({nsd}). {interval_caption(res)}"
    )


def published_caption(title: str, label: str, synthetic: bool) -> str:
    """Caption of the published numbers, saying whether they compare with this study's."""
    return (
        f"Published numbers on the real {title} data (MT-UNet paper, ICASSP 2022): DSC (%), "
        "HD95 (voxels), DSC per class. "
        + (
            "Not comparable with this study's runs, which are on synthetic phantoms."
            if synthetic
            else f"Other training runs than this study's ({label}); compare with care."
        )
    )


def per_class_caption(title: str, reference: str, label: str) -> str:
    """Caption of the reference model's per-class table."""
    return f"{title}: {reference} per class, means over the seeds ({label})"


EXPERIMENTS_CAPTION = "Experiments: DSC (%) and HD95 (voxels), delta to baseline"


def nsd_label(comp: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """``τ = 2 mm``: the surface Dice tolerance the comparison recorded, with its unit."""
    tol = comp.get("nsd_tolerance")
    unit = None
    if isinstance(tol, dict):
        unit = tol.get("unit")
        tol = tol.get("value", tol.get("tolerance"))
    if isinstance(tol, bool) or not isinstance(tol, (int, float)):
        return "tolerance not recorded"
    if unit is None:
        unit = "mm" if isinstance(metrics.get("hd95_mm"), (int, float)) else "voxels"
    return f"τ = {tol:g} {unit}"


def study_text(res: Results) -> str:
    """The study's models, ablations and seeds in one line."""
    seeds = res.variants[res.reference].seeds
    models = ", ".join(f"{m} (reference)" if m == res.reference else m for m in res.models)
    abl = "; ".join(res.variants[a].label for a in res.ablations) or "none"
    return (
        f"models {models}; ablations {abl}; seeds {', '.join(str(s) for s in seeds) or '?'} "
        "(every model and ablation trained once per seed)"
    )


def machine_text(train_info: Mapping[str, Any] | None) -> str:
    """Where training ran, with which kernels, and exactly what repeats bit for bit."""
    if not train_info or not train_info.get("machine"):
        return "not recorded"
    m = train_info["machine"]
    device = str(train_info.get("device", "?"))
    kernels = (train_info.get("train_config") or {}).get("cpu_kernels", "native")
    fixed = (train_info.get("train_config") or {}).get("threads")
    threads = m.get("threads")
    vendor = m.get("vendor")
    text = (
        f"{device}; {m.get('cpu')}"
        + (f" ({vendor})" if vendor else "")
        + f", {m.get('cores')} cores"
        + (f", {threads} threads" if threads else "")
        + f", torch {m.get('torch')}"
    )
    if not device.startswith("cpu"):
        return text + "; GPU results repeat bit for bit only on the same GPU model and software"
    if fixed:
        same = f"the same torch ({fixed} threads, fixed by train.threads: any core count)"
    elif threads:
        same = f"the same torch and {threads} threads"
    else:
        same = "the same torch and threads"
    other_threads = "" if fixed else ", another thread count"
    aten = str(m.get("aten_capability", ""))
    branch = m.get("mkl_branch")
    kernel_words = f"ATen {aten}" + (f", MKL branch {branch}" if branch else "")
    if kernels == "compatible" and aten.upper() == "AVX2":
        return text + (
            f"; compatible kernels ({kernel_words}): bit for bit on Intel and AMD x86-64 CPUs "
            f"with {same} (docs/reproducibility.md)"
        )
    if kernels == "portable" and aten.upper() == "AVX2":
        return text + (
            f"; portable kernels ({kernel_words}): bit for bit on x86-64 CPUs of this vendor, "
            f"AVX-512 or AVX2 only, with {same}; a CPU of another vendor{other_threads} "
            "or another architecture trains other weights (docs/reproducibility.md)"
        )
    return text + (
        f"; native kernels ({kernel_words}): bit for bit on the same CPU model with {same} "
        "only; other CPUs round differently and move the metrics"
    )


def training_text(train_info: Mapping[str, Any] | None) -> str:
    """This run's optimizer, schedule and network, and where they differ from the paper's."""
    if not train_info:
        return "not recorded (no train.json)"
    tc = train_info.get("train_config") or {}
    mc = train_info.get("model_config") or {}
    run = {
        k: tc.get(k)
        for k in ("optimizer", "lr", "weight_decay", "batch_size", "epochs", "poly_power")
    }
    run.update(
        {
            k: mc.get(k)
            for k in (
                "img_size",
                "width_mult",
                "win_size",
                "gaussian",
                "external_attention",
                "attention",
            )
        }
    )
    text = (
        f"{run['optimizer']} lr {run['lr']}, weight decay {run['weight_decay']}, batch "
        f"{run['batch_size']}, {run['epochs']} epochs, poly decay {run['poly_power']}, loss "
        f"0.5 CE + 0.5 soft Dice; input {'x'.join(map(str, run['img_size'] or []))}, "
        f"width_mult {run['width_mult']}"
    )
    differs = [f"{k} {run[k]} (paper: {v})" for k, v in PAPER_SETUP.items() if run.get(k) != v]
    return text + (
        "; differs from the published setup in " + ", ".join(differs)
        if differs
        else "; the published setup"
    )
