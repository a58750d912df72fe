"""Tables of the speed benchmarks, rendered from their JSON in ``benchmarks/results/``.

Each function takes the loaded files of one table (``tables.TABLES``) and returns Markdown,
with the columns and formats the README used before the docs moved here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from table_format import Doc, TableError, fmt, markdown_table, rank, ratio, yes_no

# ---------------------------------------------------------------------------------------------
# benchmarks/model_speed.py

MODEL_VARIANTS = {"naive": "naive (per-position loop)", "ours": "this implementation"}


def model_speed_cpu(doc: Doc) -> str:
    """``model_speed_cpu.json``: forward and training-step throughput at 224 × 224."""
    rows = sorted(doc["results"], key=lambda r: (r["batch"], rank(r["variant"], ["naive"])))
    header = [
        "variant",
        "batch",
        "forward img/s",
        "train step img/s",
        "GFLOP/img (forward)",
        "forward GFLOP/s",
        "train GFLOP/s",
    ]
    return markdown_table(
        header,
        (
            [
                MODEL_VARIANTS.get(r["variant"], r["variant"]),
                str(r["batch"]),
                fmt(r.get("forward_images_per_s"), ".3f"),
                fmt(r.get("train_images_per_s"), ".3f"),
                fmt(r.get("forward_gflop_per_image"), ".2f"),
                fmt(r.get("forward_gflop_per_s"), ".1f"),
                fmt(r.get("train_gflop_per_s"), ".1f"),
            ]
            for r in rows
        ),
    )


def model_speed_cuda(doc: Doc) -> str:
    """``model_speed_cuda.json``: the same on a GPU, with dtype and ``torch.compile``."""
    rows = sorted(
        doc["results"],
        key=lambda r: (
            rank(r["dtype"], ["float32"]),
            r["batch"],
            rank(r["variant"], ["naive"]),
            r["compile"],
        ),
    )
    header = [
        "variant",
        "dtype",
        "compile",
        "batch",
        "forward img/s",
        "train step img/s",
        "train TFLOP/s",
    ]
    return markdown_table(
        header,
        (
            [
                MODEL_VARIANTS.get(r["variant"], r["variant"]),
                r["dtype"],
                yes_no(r["compile"]),
                str(r["batch"]),
                fmt(r.get("forward_images_per_s"), ".1f"),
                fmt(r.get("train_images_per_s"), ".1f"),
                fmt(r["train_gflop_per_s"] / 1000 if "train_gflop_per_s" in r else None, ".1f"),
            ]
            for r in rows
        ),
    )


# ---------------------------------------------------------------------------------------------
# benchmarks/train_speed.py


def _train_speed_config(row: Doc) -> list[str]:
    height, width = row["img_size"]
    return [
        f"{row['config']} (width {row['width_mult']})",
        f"{row['parameters'] / 1e6:.1f} M",
        f"{height}×{width}",
        str(row["batch_size"]),
    ]


def train_speed_cpu(doc: Doc) -> str:
    """``train_speed_cpu.json``: training and inference throughput of both configurations."""
    header = [
        "configuration",
        "parameters",
        "input",
        "batch",
        "training img/s",
        "inference slices/s",
    ]
    return markdown_table(
        header,
        (
            [
                *_train_speed_config(r),
                f"{r['train_images_per_s']:.2f}",
                f"{r['inference_slices_per_s']:.2f}",
            ]
            for r in doc["rows"]
        ),
    )


def train_speed_cuda(doc: Doc) -> str:
    """``train_speed_cuda*.json``: the same on a GPU; compiled rows with their compile time."""
    rows = sorted(
        doc["rows"],
        key=lambda r: (r["config"], rank(r["dtype"], ["float32"]), r["compile"]),
    )
    header = [
        "configuration",
        "parameters",
        "input",
        "batch",
        "dtype",
        "compile",
        "training img/s",
        "inference slices/s",
        "compilation (s): step + volume",
    ]
    return markdown_table(
        header,
        (
            [
                *_train_speed_config(r),
                r["dtype"],
                yes_no(r["compile"]),
                f"{r['train_images_per_s']:.1f}",
                f"{r['inference_slices_per_s']:.1f}",
                # The first step and the first volume hold the compilation.
                f"{r['train_first_step_seconds']:.0f} + {r['inference_warmup_seconds']:.0f}"
                if r["compile"]
                else "-",
            ]
            for r in rows
        ),
    )


# ---------------------------------------------------------------------------------------------
# benchmarks/train_speed_vs_commit.py

COMMIT_VARIANTS = {
    "baseline": "commit {commit} (its step: host reads of the labels, contiguous, "
    "per-parameter Adam, native kernels)",
    "current_plain": "this code, levers off (contiguous, per-parameter Adam, native kernels)",
    "current": "**this code as the quick default trains** (channels-last, fused Adam, "
    "portable AVX2 kernels)",
    "current_native": "the same on native (AVX-512) kernels",
    "current_bf16": "the quick default with `bf16: true`, native kernels",
    "current_bf16_portable": "the quick default with `bf16: true`, portable kernels",
}


def train_speed_vs_commit(*docs: Doc) -> str:
    """``train_speed_vs_commit_cpu*.json``: one column pair per image size, rows by variant."""
    commit = docs[0]["settings"]["baseline_commit"][:7]
    header = ["variant"]
    by_size: list[dict[str, Doc]] = []
    order: list[str] = []
    for doc in docs:
        size = doc["settings"]["img_size"]
        header += [f"{size} × {size} img/s", f"vs {doc['settings']['baseline_commit'][:7]}"]
        by_size.append({r["variant"]: r for r in doc["rows"]})
        order += [r["variant"] for r in doc["rows"] if r["variant"] not in order]
    rows = []
    for variant in order:
        row = [COMMIT_VARIANTS.get(variant, variant).format(commit=commit)]
        for rows_of_size in by_size:
            r = rows_of_size.get(variant)
            row += (
                [f"{r['train_images_per_s']:.2f}", ratio(r["speedup_vs_baseline"])]
                if r
                else ["-", "-"]
            )
        rows.append(row)
    return markdown_table(header, rows)


# ---------------------------------------------------------------------------------------------
# benchmarks/train_step_breakdown.py

FAMILIES = {
    "convolution": "convolutions (forward and both gradients)",
    "matrix product": "matrix products (`mm`, `addmm`, `bmm`)",
    "softmax": "softmax and its gradient",
    "copy and layout": "copies, concatenation",
    "normalisation": "batch and layer norm",
    "attention kernel": "window attention kernel (`scaled_dot_product_attention`)",
    "other": "everything else (elementwise, reductions, optimizer, autograd bookkeeping)",
}


def train_step_breakdown(*docs: Doc) -> str:
    """``train_step_breakdown_cpu_*.json``: time per operator family, one column pair per
    kernel set; families by the first file's time, "other" last."""
    first = docs[0]["families"]
    families = sorted(first, key=lambda f: (f == "other", -first[f]["ms_per_step"]))
    names = [f"{d['cpu_kernels']} ({d['aten'].replace('AVX512', 'AVX-512')})" for d in docs]
    header = ["family"]
    for name in names:
        header += [f"{name} ms/step", "share"]
    header += ["GFLOP/step", "GFLOP/s " + ", ".join(d["cpu_kernels"] for d in docs)]
    rows = []
    for family in families:
        row = [FAMILIES.get(family, family)]
        for doc in docs:
            entry = doc["families"][family]
            row += [f"{entry['ms_per_step']:.1f}", f"{100 * entry['share']:.1f} %"]
        gflop = first[family]["gflop_per_step"]
        rates = [doc["families"][family]["gflop_per_s"] for doc in docs]
        row += [
            f"{gflop:.2f}" if gflop else "-",
            ", ".join(f"{rate:.0f}" for rate in rates) if all(rates) else "-",
        ]
        rows.append(row)
    total = ["**profiled step** (unprofiled, same process)"]
    for doc in docs:
        total += [f"{doc['profiled_ms_per_step']:.1f} ({doc['unprofiled_ms_per_step']:.1f})", ""]
    total += [f"{first_doc_gflop(docs):.2f}", ""]
    rows.append(total)
    return markdown_table(header, rows)


def first_doc_gflop(docs: Sequence[Doc]) -> float:
    """The step's FLOPs, which must not depend on the kernel set."""
    values = {doc["gflop_per_step"] for doc in docs}
    if len(values) != 1:
        raise TableError(f"gflop_per_step differs between the kernel sets: {sorted(values)}")
    return values.pop()


# ---------------------------------------------------------------------------------------------
# benchmarks/train_loop_speed.py

LOOP_VARIANTS = {
    "previous": "previous code path (float32, contiguous, per-parameter Adam loop, native "
    "AVX-512 kernels, external attention through autograd)",
    "channels_last": "`channels_last: true`",
    "fused_optimizer": "`fused_optimizer: true`",
    "portable": "`cpu_kernels: portable` (AVX2 kernels)",
    "workers": "`num_workers: 1` (augmentation in a worker)",
    "bf16": "`bf16: true` (CPU autocast, AVX512-BF16)",
    "fused_ea": "hand-written external-attention backward",
    "default": "**quick default** (channels-last, fused Adam, portable kernels, "
    "external-attention backward)",
    "compile": "`compile: true`",
}


def train_loop_speed(doc: Doc) -> str:
    """``train_loop_speed*_cpu.json``: the whole training loop per variant."""
    header = ["variant", "img/s", "vs previous", "first epoch (s)"]
    return markdown_table(
        header,
        (
            [
                LOOP_VARIANTS.get(r["variant"], r["variant"]),
                f"{r['images_per_s']:.2f}",
                ratio(r["speedup_vs_previous"]),
                f"{r['first_epoch_s']:.1f}",
            ]
            for r in doc["rows"]
        ),
    )


def train_loop_threads(doc: Doc) -> str:
    """``train_loop_speed_threads_cpu.json``: OpenMP settings on top of the quick default,
    each round's speed and the weights it trained."""
    rows = {r["variant"]: r for r in doc["rows"]}
    if "default" not in rows:
        raise TableError("no 'default' row to compare the thread settings with")
    reference = rows["default"]["images_per_s"]
    header = ["variant", "img/s (each round)", "vs quick default", "weights"]
    body = []
    for r in doc["rows"]:
        env = " ".join(f"{k}={v}" for k, v in sorted(r.get("env", {}).items()))
        if env:
            label = f"`{env}`"
        elif r["variant"] == "default":
            label = "quick default (2 threads, OpenMP's defaults)"
        else:
            label = LOOP_VARIANTS.get(r["variant"], r["variant"])
        digests = sorted({run["weights_sha256"] for run in r["runs"]})
        body.append(
            [
                label,
                ", ".join(f"{run['images_per_s']:.2f}" for run in r["runs"]),
                ratio(r["images_per_s"] / reference),
                ", ".join(f"`{d[:8]}…`" for d in digests),
            ]
        )
    return markdown_table(header, body)


# ---------------------------------------------------------------------------------------------
# benchmarks/loader_speed.py


def loader_speed(doc: Doc) -> str:
    """``loader_speed.json``: slices/s of training's data loading per variant and per worker,
    and whether each variant yielded the same batches as loading in the main process."""
    header = ["variant", "slices/s", "per worker", "first epoch (s)", "same bits"]
    body = [
        [
            r["variant"],
            f"{r['slices_per_second']:.1f}",
            f"{r['slices_per_second_per_worker']:.1f}",
            f"{r['first_epoch_seconds']:.2f}",
            yes_no(r["same_batches_as_workers_0"]),
        ]
        for r in doc["rows"]
    ]
    return markdown_table(header, body)


def loader_workers(doc: Doc) -> str:
    """``loader_speed.json``: the workers one run needs to keep a GPU busy at each step rate."""
    rates = doc["setup"]["gpu_step_rates_img_per_second"]
    header = ["variant", *(f"workers for {v:g} img/s ({k})" for k, v in rates.items())]
    needed = doc["workers_needed"]
    variants = [r["variant"] for r in doc["rows"] if r["workers"] > 0]
    body = [[v, *(str(needed[k][v]) for k in rates)] for v in variants]
    return markdown_table(header, body)


# ---------------------------------------------------------------------------------------------
# benchmarks/study_time.py


#: dvc's start, then the study's stages in the order the pipeline runs them.
STUDY_STEPS = (
    "dvc start",
    "phantoms",
    "preprocess",
    "train",
    "train_ablation",
    "evaluate",
    "evaluate_ablation",
    "compare",
    "report",
)


def study_time(doc: Doc) -> str:
    """``study_time.json``: seconds per stage of a fresh clone's ``dvc repro``, one column per
    revision (the mean over its rounds), the total, whether ``metrics/`` came out as the
    revision committed it, and the host-speed probe's range where the file has it."""
    rows = doc["rows"]
    commits = list(dict.fromkeys(r["commit"] for r in rows))
    # The file's keys are sorted; the rows follow the pipeline's steps instead (unknown
    # steps last).
    order = {step: i for i, step in enumerate(STUDY_STEPS)}
    stages = sorted(
        {s for r in rows for s in r["stages"]},
        key=lambda s: (order.get(s.split("@")[0], len(order)), s),
    )

    def mean(commit: str, value: Callable[[Doc], float]) -> float:
        vals = [value(r) for r in rows if r["commit"] == commit]
        return sum(vals) / len(vals)

    header = ["stage", *(f"`{c[:7]}` (s)" for c in commits)]
    body = [
        [s, *(fmt(mean(c, lambda r, s=s: r["stages"].get(s, 0.0)), ".1f") for c in commits)]
        for s in stages
    ]
    body.append(
        ["**total**", *(f"**{mean(c, lambda r: r['total_seconds']):.0f}**" for c in commits)]
    )
    body.append(
        [
            "metrics as committed",
            *(
                yes_no(all(r["metrics_as_committed"] for r in rows if r["commit"] == c))
                for c in commits
            ),
        ]
    )
    # The host's speed around the run (study_time.py's probe), where it was measured.
    probes = [
        [v for r in rows if r["commit"] == c for v in r.get("probe_ms_per_step", {}).values()]
        for c in commits
    ]
    if any(probes):
        cells = [f"{min(p):.0f} to {max(p):.0f}" if p else "-" for p in probes]
        body.append(["host probe (ms per step)", *cells])
    return markdown_table(header, body)


def _dvc_command(command: str) -> str:
    """``repro -f -s a b c`` as ``dvc repro -f -s`` and its number of stages."""
    words = command.split()
    if words[:3] == ["repro", "-f", "-s"]:
        return f"`dvc repro -f -s` ({len(words) - 3} stages)"
    return f"`dvc {command}`"


def dvc_overhead(doc: Doc) -> str:
    """``dvc_overhead.json``: per DVC command and YAML parser, the median wall time and the
    DVC process's own CPU time over the rounds, and the pure parser's CPU over the C one's."""
    parsers = {"c": "C (`ruamel.yaml.clib`)", "pure": "pure Python"}
    header = ["command", "YAML parser", "wall (s)", "DVC's own CPU (s)", "pure / C"]
    body = [
        [
            _dvc_command(r["command"]),
            parsers.get(r["parser"], r["parser"]),
            f"{r['wall_seconds']:.2f}",
            f"{r['dvc_cpu_seconds']:.2f}",
            ratio(r["pure_over_c_dvc_cpu"]) if "pure_over_c_dvc_cpu" in r else "",
        ]
        for r in doc["rows"]
    ]
    return markdown_table(header, body)


def dvc_overhead_locks(doc: Doc) -> str:
    """``dvc_overhead.json``: one load of each ``dvc.lock`` per parser, and one dump."""
    header = ["`dvc.lock`", "KB", "stages", "safe, C (s)", "safe, pure (s)", "round trip (s)",
              "round-trip dump (s)"]  # fmt: skip
    body = [
        [
            lk["lock"] if lk["lock"] == "working tree" else f"`{lk['lock'][:7]}`",
            f"{lk['bytes'] / 1024:.0f}",
            str(lk["stages"]),
            f"{lk['safe_c']:.3f}",
            f"{lk['safe_pure']:.3f}",
            f"{lk['round_trip']:.3f}",
            f"{lk['round_trip_dump']:.3f}",
        ]
        for lk in doc["locks"]
    ]
    return markdown_table(header, body)
