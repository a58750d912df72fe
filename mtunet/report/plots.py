"""Report figures (matplotlib Agg, seaborn): the study's differences to the reference (forest
plot), Dice per case by model, Dice per class, training curves, qualitative slices.

PNG files are written without the ``Software`` metadata entry (and matplotlib writes no
timestamp into PNGs), so the same inputs give the same bytes on one machine.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mtunet.fileio import atomic_path

# Contour colours, one per class id (tab10 order), the same in every figure.
_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
]


def class_color(class_id: int) -> str:
    """Colour of a foreground class (id >= 1) in every figure."""
    return _COLORS[(class_id - 1) % len(_COLORS)]


def save_png(fig: Any, path: Path, dpi: int) -> Path:
    """Save a figure as PNG atomically with deterministic metadata, then close it."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def variant_color(index: int) -> str:
    """Colour of the ``index``-th variant of the study (models, then ablations)."""
    return _COLORS[index % len(_COLORS)]


def forest_plot(
    data: pd.DataFrame,
    metrics: Sequence[tuple[str, str]],
    title: str,
    path: Path,
    dpi: int,
) -> Path:
    """Differences to the reference with their intervals, one row per variant (a forest plot).

    Args:
        data: One row per variant, top to bottom: ``label``, ``group`` (``"model"`` or
            ``"ablation"``) and per metric ``m``: ``m_diff``, ``m_ci_low``, ``m_ci_high`` and
            ``m_significant`` (bool; a filled marker, else hollow). Missing values skip a dot.
        metrics: ``(m, x-axis label)`` per panel, left to right.
        title: Figure title.
        path: PNG path.
        dpi: Resolution.
    """
    n = len(data)
    height = 0.42 * n + 1.9
    fig, axes = plt.subplots(
        1,
        len(metrics),
        figsize=(3.6 * len(metrics) + 2.0, height),
        squeeze=False,
        sharey=True,
    )
    ys = np.arange(n)[::-1].astype(float)
    colors = {"model": _COLORS[0], "ablation": _COLORS[1]}
    for ax, (metric, xlabel) in zip(axes[0], metrics, strict=True):
        for y, (_, row) in zip(ys, data.iterrows(), strict=True):
            d, lo, hi = (row.get(f"{metric}_{k}") for k in ("diff", "ci_low", "ci_high"))
            if not _finite(d):
                continue
            color = colors.get(str(row["group"]), _COLORS[2])
            if _finite(lo) and _finite(hi):
                ax.plot([lo, hi], [y, y], color=color, linewidth=1.8, solid_capstyle="butt")
            filled = bool(row.get(f"{metric}_significant"))
            ax.plot(
                d, y, "o", color=color, markerfacecolor=color if filled else "white",
                markersize=6, zorder=3,
            )  # fmt: skip
        ax.axvline(0.0, color="black", linewidth=0.9, linestyle="--")
        groups = list(data["group"])
        for i in range(1, n):  # a rule between the models and the ablations
            if groups[i] != groups[i - 1]:
                ax.axhline(ys[i] + 0.5, color="grey", linewidth=0.6)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(ys, list(data["label"]))
    axes[0][0].set_ylim(-0.7, n - 0.3)
    from matplotlib.lines import Line2D

    handles = [
        Line2D([0], [0], color=colors[g], marker="o", label=g)
        for g in ("model", "ablation")
        if g in set(data["group"])
    ]
    handles += [
        Line2D([0], [0], color="black", marker="o", linestyle="none", label="significant (interval excludes 0)"),
        Line2D(
            [0], [0], color="black", marker="o", markerfacecolor="white", linestyle="none",
            label="not significant",
        ),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1))  # room for the legend: 0.3 inch
    return save_png(fig, path, dpi)


def _finite(v: Any) -> bool:
    try:
        return v is not None and bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False


def per_case_variant_plot(
    scores: pd.DataFrame, variants: Sequence[str], title: str, path: Path, dpi: int
) -> Path:
    """Dice per test case, one colour per variant (a dodged strip plot).

    Args:
        scores: Columns ``variant, case, dsc``: a case's mean foreground Dice (%) averaged
            over the seeds, one row per variant and case.
        variants: Variants in legend order (their colours follow this order).
        title: Figure title.
        path: PNG path.
        dpi: Resolution.
    """
    cases = list(dict.fromkeys(scores["case"]))
    pos = {c: i for i, c in enumerate(cases)}
    k = max(len(variants), 1)
    step = min(0.8 / k, 0.22)
    offsets = (np.arange(k) - (k - 1) / 2.0) * step
    fig, ax = plt.subplots(
        figsize=(max(4.5, 0.55 * len(cases) * max(1.0, k * step / 0.5) + 3.0), 3.6)
    )
    for i, variant in enumerate(variants):
        sub = scores[scores["variant"] == variant]
        x = sub["case"].map(pos).to_numpy(dtype=float) + offsets[i]
        ax.scatter(
            x, sub["dsc"].to_numpy(dtype=float), s=30, color=variant_color(i), label=variant,
            edgecolors="black", linewidths=0.4, zorder=3,
        )  # fmt: skip
    for i in range(1, len(cases)):
        ax.axvline(i - 0.5, color="grey", linewidth=0.4, alpha=0.5)
    ax.set_xticks(range(len(cases)), cases, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(cases) - 0.4)
    ax.set_ylim(-2, 102)
    ax.set_xlabel("test case")
    ax.set_ylabel("mean foreground Dice (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title)
    return save_png(fig, path, dpi)


def dice_per_class_plot(per_case: pd.DataFrame, title: str, path: Path, dpi: int) -> Path:
    """Box plot with the cases as points: Dice (%) per class from the per-case CSV.

    Args:
        per_case: Columns ``case, class_id, class_name, dice`` (dice in [0, 1]; NaN rows,
            from ``empty_policy="nan"``, are left out).
    """
    import seaborn as sns

    df = per_case.dropna(subset=["dice"]).copy()
    df["dsc"] = df["dice"].astype(float) * 100.0
    order = list(dict.fromkeys(df.sort_values("class_id")["class_name"]))
    palette = {
        name: class_color(int(cid))
        for name, cid in df[["class_name", "class_id"]].drop_duplicates().itertuples(index=False)
    }
    width = max(4.0, 0.9 * len(order) + 1.5)
    fig, ax = plt.subplots(figsize=(width, 3.6))
    with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib's deprecated `vert`
        warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
        sns.boxplot(
            data=df,
            x="class_name",
            y="dsc",
            hue="class_name",
            order=order,
            hue_order=order,
            palette=palette,
            showfliers=False,
            legend=False,
            ax=ax,
            boxprops={"alpha": 0.45},
        )
    # The cases as points, with a seeded jitter (seaborn's stripplot jitter is not seedable).
    rng = np.random.default_rng(0)
    xpos = df["class_name"].map({n: i for i, n in enumerate(order)}).to_numpy(dtype=float)
    ax.scatter(xpos + rng.uniform(-0.15, 0.15, len(xpos)), df["dsc"], s=10, c="black", zorder=3)
    ax.set_xlabel("")
    ax.set_ylabel("Dice per case (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    return save_png(fig, path, dpi)


def training_curves_plot(curves: dict[str, pd.DataFrame], title: str, path: Path, dpi: int) -> Path:
    """Panels for the available curves: step loss (+ epoch loss), learning rate, val Dice.

    Args:
        curves: Name -> DataFrame with columns ``step`` and ``value``; names used:
            ``loss``, ``epoch_loss``, ``lr``, ``val_dice``.
    """
    panels = [
        ("loss", "training loss", ["loss", "epoch_loss"]),
        ("lr", "learning rate", ["lr"]),
        ("val_dice", "validation Dice", ["val_dice"]),
    ]
    panels = [p for p in panels if any(n in curves for n in p[2])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (_, ylabel, names) in zip(axes[0], panels, strict=True):
        for name in names:
            if name not in curves:
                continue
            df = curves[name]
            style = {"marker": "o", "markersize": 3} if name in ("epoch_loss", "val_dice") else {}
            label = {"loss": "per step", "epoch_loss": "per epoch (mean)"}.get(name, name)
            ax.plot(df["step"], df["value"], label=label, linewidth=1.2, **style)
        ax.set_xlabel("step" if names[0] != "val_dice" else "step / epoch (as logged)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len([n for n in names if n in curves]) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, path, dpi)


def qualitative_plot(
    qual: dict[str, np.ndarray],
    class_names: list[str],
    title: str,
    path: Path,
    dpi: int,
    max_cases: int = 4,
) -> Path:
    """Image slices with ground-truth (solid) and predicted (dashed) contours per class.

    Args:
        qual: ``image`` (K, H, W) float in [0, 1], ``gt`` and ``pred`` (K, H, W) uint8 label
            maps, ``case`` (K,) str, ``slice`` (K,) int, optional ``shape`` (K, 2) with the
            unpadded size of each slice.
        class_names: Names indexed by class id (0 = background).
    """
    from matplotlib.lines import Line2D

    k = min(len(qual["image"]), max_cases)
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3.6), squeeze=False)
    present: set[int] = set()
    for i, ax in enumerate(axes[0]):
        image, gt, pred = qual["image"][i], qual["gt"][i], qual["pred"][i]
        if "shape" in qual and len(qual["shape"]) > i:
            h, w = (int(v) for v in qual["shape"][i])
            image, gt, pred = image[:h, :w], gt[:h, :w], pred[:h, :w]
        ax.imshow(image, cmap="gray", interpolation="nearest")
        for cid in range(1, len(class_names)):
            for mask, style in ((gt == cid, "solid"), (pred == cid, "dashed")):
                if mask.any():
                    present.add(cid)
                    ax.contour(
                        mask.astype(np.float32),
                        levels=[0.5],
                        colors=[class_color(cid)],
                        linewidths=1.1,
                        linestyles=style,
                    )
        case = str(qual["case"][i]) if "case" in qual else f"#{i}"
        sl = int(qual["slice"][i]) if "slice" in qual else -1
        ax.set_title(f"{case}, slice {sl}", fontsize=9)
        ax.set_axis_off()
    handles = [
        Line2D([0], [0], color=class_color(c), linewidth=2, label=class_names[c])
        for c in sorted(present)
    ]
    handles += [
        Line2D([0], [0], color="black", linestyle="solid", label="ground truth"),
        Line2D([0], [0], color="black", linestyle="dashed", label="prediction"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return save_png(fig, path, dpi)
