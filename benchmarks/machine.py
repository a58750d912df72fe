"""Where a benchmark's numbers were measured: one record shared by every benchmark script."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtunet.fileio import read_json
from mtunet.numerics import cpu_name


def machine_info(device: torch.device | str = "cpu", **versions: str) -> dict[str, Any]:
    """Platform, CPU count, library versions, torch threads and the device (GPU name on CUDA).

    Args:
        device: The device the benchmark ran on.
        **versions: Extra library versions to record (e.g. ``medpy="0.5.2"``).
    """
    device = torch.device(device)
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": cpu_name(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "torch": str(torch.__version__),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "device": str(device),
        **versions,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def merge_rows(
    path: Path,
    field: str,
    rows: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], Hashable],
) -> list[dict[str, Any]]:
    """The rows of ``path``'s ``field`` (if the file exists) updated by ``rows``, sorted by key.

    A new row updates the stored row of the same key field by field, so a run that measures
    part of a row keeps the rest measured before.
    """
    old = read_json(path).get(field, []) if path.is_file() else []
    merged = {key(r): r for r in old}
    for r in rows:
        merged[key(r)] = {**merged.get(key(r), {}), **r}
    return [merged[k] for k in sorted(merged)]
