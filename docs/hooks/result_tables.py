"""Tables of the reproducibility, metrics, preprocessing and phantom benchmarks, and of the
committed ablation study, rendered from the JSON files they wrote.

Each function takes the loaded files of one table (``tables.TABLES``) and returns Markdown.
"""

from __future__ import annotations

from table_format import Doc, fmt, markdown_table, rank, ratio, sha, signed, yes_no

# ---------------------------------------------------------------------------------------------
# benchmarks/cpu_reproducibility.py


KERNEL_ORDER = ("native", "portable", "compatible")


def cpu_reproducibility(doc: Doc) -> str:
    """``cpu_reproducibility.json``: the weights each (simulated) CPU trains, per kernel set."""
    header = ["kernels", "CPU", "MKL branch", "weights SHA-256", "last epoch loss"]
    return markdown_table(
        header,
        (
            [
                f"`{r['kernels']}`",
                r["machine"],
                r["mkl_branch"],
                sha(r["weights_sha256"]),
                f"{r['final_loss']:.9f}",
            ]
            for r in doc["runs"]
        ),
    )


def shapes(input_shapes: list[list[int]]) -> str:
    """``(48, 8, 16, 8) × 3`` or ``(384, 16, 16), (384, 16, 8)``: an operator's inputs."""
    text = [f"({', '.join(map(str, s))})" for s in input_shapes]
    if len(set(text)) == 1 and len(text) > 1:
        return f"{text[0]} × {len(text)}"
    return ", ".join(text)


def cpu_reproducibility_trace(doc: Doc) -> str:
    """``cpu_reproducibility.json``: one training step traced operator by operator on this CPU
    and on the other vendor's MKL dispatch, per kernel set."""
    header = [
        "kernels",
        "window attention",
        "operators",
        "with a different output",
        "first to differ on equal inputs",
    ]
    rows = []
    for t in doc["trace"]:
        first = t["first"]
        rows.append(
            [
                f"`{t['kernels']}`",
                {"flash": "CPU flash kernel", "math": "math path"}[t.get("attention", "flash")],
                str(t["ops"]),
                str(t["ops_differing"]),
                f"`{first['op']}` {shapes(first['input_shapes'])} (operator {first['index']})"
                if first
                else "none",
            ]
        )
    return markdown_table(header, rows)


def cpu_reproducibility_cost(doc: Doc) -> str:
    """``cpu_reproducibility.json``: per kernel set, whether every CPU trained the same bits,
    and the training step's speed on this machine."""
    cost = doc["cost"]
    rounds = cost["settings"]["rounds"]
    header = [
        "kernels",
        "same weights on every CPU",
        f"img/s (median of {rounds} rounds)",
        "step time vs portable",
    ]
    return markdown_table(
        header,
        (
            [
                f"`{kernels}`",
                yes_no(same),
                f"{cost['images_per_s'][kernels]['median']:.1f}",
                ratio(cost["step_time_vs_portable"][kernels]),
            ]
            for kernels, same in sorted(
                doc["identical"].items(), key=lambda kv: rank(kv[0], KERNEL_ORDER)
            )
        ),
    )


# ---------------------------------------------------------------------------------------------
# benchmarks/metrics_speed.py, preprocess_speed.py, phantom_difficulty.py


def metrics_speed(doc: Doc) -> str:
    """``metrics_speed.json``: Dice and HD95 of one large case, medpy against this package."""
    labels = {
        "medpy": f"medpy {doc['machine'].get('medpy', '')} (`dc`, `hd95`)".replace("  ", " "),
        "mtunet": "mtunet.metrics (voxels)",
        "mtunet_mm": "mtunet.metrics (voxels and mm)",
    }
    header = ["implementation", "seconds", "peak memory (MB)"]
    return markdown_table(
        header,
        (
            [labels.get(name, name), f"{run['seconds']:.2f}", f"{run['peak_mem_mb']:.0f}"]
            for name, run in doc["runs"].items()
        ),
    )


def preprocess_speed(doc: Doc) -> str:
    """``preprocess_speed.json``: raw NIfTI to slices and test volumes, one row per run."""
    header = ["run", "cases", "slices", "seconds per case", "slices/s", "peak memory (MB)"]
    return markdown_table(
        header,
        (
            [
                str(r["run"]),
                str(r["cases"]),
                str(r["slices"]),
                f"{r['seconds_per_case']:.2f}",
                f"{r['slices_per_s']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
            ]
            for r in doc["results"]
        ),
    )


def phantom_difficulty(doc: Doc) -> str:
    """``phantom_difficulty_<ds>.json``: per class, how much data, how small, how contrasted,
    and when training learnt it; classes in the order they were learnt."""
    classes = doc["classes"]
    size = doc["img_size"]
    names = sorted(classes, key=lambda c: (classes[c]["learnt_at_epoch"] or 10**9, c))
    header = [
        "class",
        "training slices with it",
        f"median area at {size} × {size} (px)",
        "contrast to a 2-px ring (SD units)",
        "threshold DSC",
        f"training Dice first ≥ {doc['learnt_threshold']} at epoch",
    ]
    return markdown_table(
        header,
        (
            [
                name.replace("_", " "),
                str(classes[name]["slices"]),
                f"{classes[name]['median_px']:.0f}",
                f"{classes[name]['contrast']:.1f}",
                f"{classes[name]['threshold_dsc']:.1f}",
                fmt(classes[name]["learnt_at_epoch"], "d"),
            ]
            for name in names
        ),
    )


# ---------------------------------------------------------------------------------------------
# The committed ablation study (reports/ablation_cpu/, written by the compare stage)

STUDY_VARIANTS = {
    "mtunet": "MT-UNet (full)",
    "no_gaussian": "no Gaussian weighting",
    "no_external_attention": "no external attention",
    "global_attention": "global self-attention",
    "win_size_2": "window 2",
    "win_size_7": "window 7",
    "unet": "U-Net",
    "attention_unet": "Attention U-Net",
}


def ablation_study(doc: Doc) -> str:
    """``comparison_<ds>.json``: each variant's DSC over seeds, and its paired difference to
    the reference on the test cases (ablations first, then the other models)."""
    reference = doc["reference"]
    diffs = {
        c["variant"]: c
        for group in ("ablations", "models")
        for c in doc["comparisons"][group]["dsc"]
    }
    header = ["variant", "DSC % [seeds CI]", "per seed", "Δ DSC [CI]", "Holm p"]
    rows = []
    for name in [reference, *diffs]:
        dsc = doc["variants"][name]["dsc"]
        low, high = dsc["seed_ci"] if dsc.get("seed_ci") else (None, None)
        interval = f" [{low:.2f}, {high:.2f}]" if low is not None else ""
        diff = diffs.get(name)
        rows.append(
            [
                STUDY_VARIANTS.get(name, name),
                f"{dsc['mean']:.2f}{interval}",
                ", ".join(f"{x:.1f}" for x in dsc["per_seed"]),
                f"{signed(diff['diff'])} [{signed(diff['ci_low'])}, {signed(diff['ci_high'])}]"
                if diff
                else "",
                f"{diff['p_holm']:.3f}" if diff else "",
            ]
        )
    return markdown_table(header, rows)


# ---------------------------------------------------------------------------------------------
# benchmarks/rerun_spread.py

METRIC_NAMES = {"dsc": "DSC (%)", "hd95": "HD95 (vox)"}


def rerun_spread(doc: Doc) -> str:
    """``rerun_spread.json``: each variant's committed means and how far each rerun on a
    simulated other machine moved them."""
    reruns = list(doc["reruns"])
    header = ["dataset", "model", "metric", "committed", *reruns, "largest move"]
    rows = []
    for ds, numbers in doc["committed"].items():
        for name, means in numbers["variants"].items():
            for metric, label in METRIC_NAMES.items():
                if means.get(metric) is None:
                    continue
                moves = [doc["reruns"][r]["results"][ds]["variants"][name][metric]["move"]
                         for r in reruns]  # fmt: skip
                rows.append(
                    [
                        ds,
                        name,
                        label,
                        f"{means[metric]:.2f}",
                        *(signed(m) for m in moves),
                        f"{doc['largest_move'][ds][name][metric]:.2f}",
                    ]
                )
    return markdown_table(header, rows)


def rerun_spread_verdicts(doc: Doc) -> str:
    """``rerun_spread.json``: every comparison's committed verdict and each rerun's."""
    reruns = list(doc["reruns"])
    header = ["dataset", "comparison", "committed verdict", *reruns]
    rows = []
    for ds, numbers in doc["committed"].items():
        for key, row in numbers["comparisons"].items():
            _, metric, variant = key.split("/")
            rerun_words = []
            for r in reruns:
                c = doc["reruns"][r]["results"][ds]["comparisons"][key]
                rerun_words.append(("same" if c["same"] else f"**{c['rerun']}**") +
                                   f" ({signed(c['diff_rerun'])})")  # fmt: skip
            rows.append(
                [
                    ds,
                    f"{variant} − reference, {METRIC_NAMES.get(metric, metric)}",
                    f"{row['verdict']} ({signed(row['diff'])})",
                    *rerun_words,
                ]
            )
    return markdown_table(header, rows)


def ray_cancel(*docs: Doc) -> str:
    """``ray_cancel*.json``: launches stopped each way, how many aborted, the stop's seconds;
    one row per way and file (SIGINT as a terminal leaves it, or ignored)."""
    header = ["SIGINT", "stop", "launches", "aborted (which)", "Ray check failures", "seconds"]
    names = {"ray cancel": "Ray's cancel (before)", "cancel files": "cancel file (now)"}
    rows = []
    for doc in docs:
        for way, summary in doc["summary"].items():
            mine = [r for r in doc["rows"] if r["way"] == way]
            aborted = [str(r["launch"]) for r in mine if r["exit_status"] != 130]
            seconds = [r["stop_seconds"] for r in mine if r["stop_seconds"] is not None]
            rows.append(
                [
                    doc["sigint"],
                    names.get(way, way),
                    str(summary["launches"]),
                    f"{summary['aborted']}" + (f" ({', '.join(aborted)})" if aborted else ""),
                    str(summary["ray_check_failures"]),
                    f"{min(seconds):.2f} to {max(seconds):.2f}" if seconds else "-",
                ]
            )
    return markdown_table(header, rows)
