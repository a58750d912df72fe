"""MkDocs hook: tables rendered from the result files, and the figures under ``reports/``.

A page writes ``<!-- table: NAME -->`` on a line of its own where a table belongs. At build time the marker is
replaced by a Markdown table rendered from the JSON files that ``TABLES[NAME]`` reads (paths
relative to the repository root), so rerunning a benchmark or the study updates the docs
instead of leaving stale prose. An unknown NAME, a missing file or a missing field stops the
build with an error naming it.

Pages link figures as ``../reports/...``, which is right where the Markdown is read in the
repository (``docs/`` beside ``reports/``). MkDocs serves only ``docs/``, so the hook adds the
images under ``reports/`` to the site as ``reports/...`` and rewrites those links to match.

Registered in ``mkdocs.yml`` under ``hooks:``; ``tests/test_docs.py`` tests the rendering.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: ``<!-- table: NAME -->`` alone on its line, NAME made of letters, digits, ``_``, ``-``, ``.``
#: (alone, so that a page can quote a marker in running text or code).
MARKER = re.compile(r"^[ \t]*<!--[ \t]*table:[ \t]*([A-Za-z0-9_.-]+)[ \t]*-->[ \t]*$", re.MULTILINE)
#: Image types under ``reports/`` that the site serves.
FIGURE_SUFFIXES = (".png", ".svg", ".jpg")
#: The minus sign of signed differences, as the README printed them.
MINUS = "\u2212"

Doc = Mapping[str, Any]


class TableError(ValueError):
    """A marker that cannot be rendered: unknown name, missing file, missing field."""


@dataclass(frozen=True)
class Table:
    """One table a marker can name.

    Attributes:
        files: JSON files it reads, relative to the repository root, in the order
            ``render`` takes them.
        render: Builds the Markdown table from the loaded files.
    """

    files: tuple[str, ...]
    render: Callable[..., str]


# ---------------------------------------------------------------------------------------------
# Formatting


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (what MkDocs' ``tables`` extension reads)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise TableError(f"row {list(row)} has {len(row)} cells, header has {len(header)}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``-`` where the file has no value."""
    return "-" if value is None else format(value, spec)


def signed(value: float, spec: str = ".2f") -> str:
    """A difference with its sign, ``+`` or a true minus."""
    return format(value, "+" + spec).replace("-", MINUS)


def ratio(value: float) -> str:
    """A speed ratio: ``1.13x``."""
    return f"{value:.2f}x"


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def rank(value: str, order: Sequence[str]) -> int:
    """Position of ``value`` in ``order``; unknown values sort last."""
    return order.index(value) if value in order else len(order)


def _sha(digest: str) -> str:
    return f"`{digest[:16]}…`"


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
                _sha(r["weights_sha256"]),
                f"{r['final_loss']:.9f}",
            ]
            for r in doc["runs"]
        ),
    )


def cpu_reproducibility_trace(doc: Doc) -> str:
    """``cpu_reproducibility.json``: one training step traced operator by operator on this CPU
    and on the other vendor's MKL dispatch, per kernel set."""
    header = ["kernels", "operators", "with a different output", "first to differ on equal inputs"]
    rows = []
    for t in doc["trace"]:
        first = t["first"]
        rows.append(
            [
                f"`{t['kernels']}`",
                str(t["ops"]),
                str(t["ops_differing"]),
                f"`{first['op']}` (operator {first['index']})" if first else "none",
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
# The tables markers can name

RESULTS = "benchmarks/results"

TABLES: dict[str, Table] = {
    "model_speed_cpu": Table((f"{RESULTS}/model_speed_cpu.json",), model_speed_cpu),
    "model_speed_cpu_forward_rerun": Table(
        (f"{RESULTS}/model_speed_cpu_forward_rerun.json",), model_speed_cpu
    ),
    "model_speed_cuda": Table((f"{RESULTS}/model_speed_cuda.json",), model_speed_cuda),
    "train_speed_cpu": Table((f"{RESULTS}/train_speed_cpu.json",), train_speed_cpu),
    "train_speed_cuda": Table((f"{RESULTS}/train_speed_cuda.json",), train_speed_cuda),
    "train_speed_cuda_eager_rerun": Table(
        (f"{RESULTS}/train_speed_cuda_eager_rerun.json",), train_speed_cuda
    ),
    "train_speed_vs_commit": Table(
        (
            f"{RESULTS}/train_speed_vs_commit_cpu.json",
            f"{RESULTS}/train_speed_vs_commit_cpu_64.json",
        ),
        train_speed_vs_commit,
    ),
    "train_step_breakdown": Table(
        (
            f"{RESULTS}/train_step_breakdown_cpu_portable.json",
            f"{RESULTS}/train_step_breakdown_cpu_native.json",
        ),
        train_step_breakdown,
    ),
    "train_loop_speed_cpu": Table((f"{RESULTS}/train_loop_speed_cpu.json",), train_loop_speed),
    "train_loop_speed_compile_cpu": Table(
        (f"{RESULTS}/train_loop_speed_compile_cpu.json",), train_loop_speed
    ),
    "train_loop_speed_threads_cpu": Table(
        (f"{RESULTS}/train_loop_speed_threads_cpu.json",), train_loop_threads
    ),
    "cpu_reproducibility": Table((f"{RESULTS}/cpu_reproducibility.json",), cpu_reproducibility),
    "cpu_reproducibility_trace": Table(
        (f"{RESULTS}/cpu_reproducibility.json",), cpu_reproducibility_trace
    ),
    "cpu_reproducibility_cost": Table(
        (f"{RESULTS}/cpu_reproducibility.json",), cpu_reproducibility_cost
    ),
    "metrics_speed": Table((f"{RESULTS}/metrics_speed.json",), metrics_speed),
    "preprocess_speed": Table((f"{RESULTS}/preprocess_speed.json",), preprocess_speed),
    "phantom_difficulty_synapse": Table(
        (f"{RESULTS}/phantom_difficulty_synapse.json",), phantom_difficulty
    ),
    "phantom_difficulty_acdc": Table(
        (f"{RESULTS}/phantom_difficulty_acdc.json",), phantom_difficulty
    ),
    "ablation_cpu": Table(("reports/ablation_cpu/comparison_synapse.json",), ablation_study),
}


# ---------------------------------------------------------------------------------------------
# Rendering


def _load(root: Path, name: str, relative: str) -> Doc:
    path = root / relative
    if not path.is_file():
        raise TableError(f"table {name!r}: result file {relative} not found (under {root})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TableError(f"table {name!r}: {relative} is not valid JSON: {exc}") from exc


def render_table(name: str, root: Path, tables: Mapping[str, Table] = TABLES) -> str:
    """The Markdown table a marker names.

    Args:
        name: The marker's name, a key of ``tables``.
        root: The repository root the table's files are relative to.
        tables: The tables markers can name.

    Returns:
        The table, header and separator lines first.

    Raises:
        TableError: ``name`` is unknown, a file is missing or unreadable, or lacks a field
            the table needs (each named in the message).
    """
    if name not in tables:
        raise TableError(f"unknown table marker {name!r}; known: {', '.join(sorted(tables))}")
    table = tables[name]
    docs = [_load(root, name, relative) for relative in table.files]
    try:
        return table.render(*docs)
    except (KeyError, TypeError, IndexError) as exc:
        files = ", ".join(table.files)
        raise TableError(f"table {name!r}: {files} lack a field it needs: {exc!r}") from exc


def replace_markers(markdown: str, root: Path, tables: Mapping[str, Table] = TABLES) -> str:
    """``markdown`` with every table marker replaced by its rendered table."""
    return MARKER.sub(lambda m: render_table(m.group(1), root, tables), markdown)


def rewrite_figure_links(markdown: str, src_uri: str) -> str:
    """Links to ``reports/`` written relative to the page's place in the repository
    (``docs/<src_uri>``) turned into links to the copies the site serves."""
    depth = src_uri.count("/")
    in_repo = "../" * (depth + 1) + "reports/"
    in_site = "../" * depth + "reports/"
    return markdown.replace(f"]({in_repo}", f"]({in_site}")


# ---------------------------------------------------------------------------------------------
# MkDocs events


def _root(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_files(files: Any, config: Any) -> Any:
    """Add the images under ``reports/`` to the site, at ``reports/...``."""
    from mkdocs.structure.files import File

    root = _root(config)
    for path in sorted((root / "reports").rglob("*")):
        if path.suffix in FIGURE_SUFFIXES and path.is_file():
            src_uri = path.relative_to(root).as_posix()
            files.append(File.generated(config, src_uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **_: Any) -> str:
    """Render the page's table markers and point its figure links at the site's copies."""
    from mkdocs.exceptions import PluginError

    try:
        markdown = replace_markers(markdown, _root(config))
    except TableError as exc:
        raise PluginError(f"docs/{page.file.src_uri}: {exc}") from exc
    return rewrite_figure_links(markdown, page.file.src_uri)
