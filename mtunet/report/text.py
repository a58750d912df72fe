"""The report's words that are not tables: captions, protocol facts, and what the study's
size allows the tests to find (:class:`~mtunet.report.model.Sampling`).

The captions are also the LaTeX captions of the table files, so they are made here rather
than in the template; the template holds the headings and the prose around them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scipy.stats import t as student_t

from mtunet.report.formatting import ALPHA, fmt
from mtunet.report.model import Sampling
from mtunet.report.published import PAPER_SETUP
from mtunet.report.results import Results


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p-value of the exact Wilcoxon signed-rank test on ``n`` cases.

    Reached when all ``n`` non-zero differences have the same sign: under the null each sign
    is a fair coin, so that happens with probability ``1 / 2**n`` per side, ``2 / 2**n``
    two-sided (capped at 1).
    """
    return 1.0 if n < 1 else min(1.0, 2.0 / 2.0**n)


def cases_needed(alpha: float = ALPHA) -> int:
    """The fewest test cases with which the exact Wilcoxon test can give ``p < alpha``."""
    n = 1
    while min_wilcoxon_p(n) >= alpha:
        n += 1
    return n


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


def sampling(comparison: Mapping[str, Any], res: Results) -> Sampling:
    """The seeds, resamples and paired cases behind the intervals, and what they allow."""
    ref = comparison["variants"][res.reference]
    n_seeds = (ref.get("dsc") or {}).get("n_seeds") or len(ref.get("seeds") or [])
    n_boot = comparison.get("n_bootstrap")
    n = _n_paired(comparison, res.reference)
    return Sampling(
        level=res.level,
        n_seeds=n_seeds,
        t_quantile=(
            float(student_t.ppf(0.5 + res.level / 200.0, n_seeds - 1)) if n_seeds >= 2 else None
        ),
        n_bootstrap=int(n_boot) if isinstance(n_boot, int) else None,
        n_cases=n,
        min_p=min_wilcoxon_p(n) if n is not None else None,
        cases_needed=cases_needed(ALPHA),
        alpha=ALPHA,
    )


def _n_paired(comparison: Mapping[str, Any], reference: str) -> int | None:
    """Test cases of the first model comparison, else those of the reference's DSC."""
    for rows in ((comparison.get("comparisons") or {}).get("models") or {}).values():
        for row in rows:
            if isinstance(row.get("n"), int):
                return int(row["n"])
    n = (comparison["variants"][reference].get("dsc") or {}).get("n_cases")
    return int(n) if isinstance(n, int) else None


def interval_caption(res: Results) -> str:
    """What the two intervals of every mean are."""
    return (
        f"Means with {res.level}% intervals: `seeds` = Student-t over the per-seed means (two "
        "seeds or more), `cases` = percentile bootstrap over the test cases."
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
        f"{title}: each model minus {res.reference}, paired on the test cases (seed-averaged); "
        "bootstrap interval of the mean difference, two-sided Wilcoxon signed-rank p, Holm "
        "correction over the models per metric."
    )


def ablations_caption(title: str, res: Results) -> str:
    """Caption of the ablation table."""
    full = res.ablation_reference
    return (
        f"{title}: ablations of {full} (each changes the model section as shown). "
        f"{interval_caption(res)} Δ = ablation minus {full}, paired on the test "
        "cases, with its bootstrap interval; Holm correction over the ablations per metric."
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
    """Where training ran, with which CPU kernels, and what that makes reproducible."""
    if not train_info or not train_info.get("machine"):
        return "not recorded"
    m = train_info["machine"]
    device = train_info.get("device", "?")
    kernels = (train_info.get("train_config") or {}).get("cpu_kernels", "native")
    text = f"{device}; {m.get('cpu')}, {m.get('cores')} cores, torch {m.get('torch')}"
    if not str(device).startswith("cpu"):
        return text + "; GPU results repeat bit for bit only on the same GPU and software"
    if kernels == "portable" and str(m.get("aten_capability", "")).upper() == "AVX2":
        return text + (
            "; portable AVX2 kernels: the same params give the same weights, bit for bit, on "
            "this machine and on an AVX2-only CPU simulated on it (same torch and thread "
            "count; benchmarks/cpu_reproducibility.py), while native kernels moved the Synapse "
            "mean DSC by points (README, Reproducibility across machines)"
        )
    return text + (
        f"; native {m.get('aten_capability')} kernels: bit for bit on the same CPU and "
        "software only; other CPUs round differently and move the metrics"
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
