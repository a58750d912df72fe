"""Which CPU kernels training runs on: the portable set, or the fastest this CPU has.

PyTorch's CPU arithmetic comes from three libraries, each of which picks its code path from
the processor it finds: ATen's own vectorised kernels (AVX2 or AVX-512), oneDNN's
convolutions (``ONEDNN_MAX_CPU_ISA``) and MKL's matrix products (``MKL_CBWR``). Different
paths sum in different orders, so the same seed gives weights that differ in the last bits
on an AVX2 and an AVX-512 machine, and a short training run amplifies that into visibly
different metrics.

``cpu_kernels: portable`` caps all three at AVX2, which every x86-64 CPU of the last decade
has, so x86 machines compute the same bits as one another (same software, same thread
count). The settings are environment variables that each library reads once, when it first
computes; :func:`pin_cpu_kernels` must therefore run before the process does any tensor
arithmetic, and says so when it ran too late.
"""

from __future__ import annotations

import logging
import os
import platform
from typing import Literal

import torch

logger = logging.getLogger(__name__)

#: The environment that caps ATen, oneDNN and MKL at their AVX2 code paths.
PORTABLE_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",
}

CpuKernels = Literal["native", "portable"]


def is_x86() -> bool:
    """True on x86-64 processors, the only ones the portable kernel set applies to."""
    return platform.machine().lower() in ("x86_64", "amd64")


def pin_cpu_kernels(mode: CpuKernels) -> dict[str, str | None]:
    """Select the CPU kernels of this process (and of processes it starts afterwards).

    Args:
        mode: ``"portable"`` sets :data:`PORTABLE_ENV` (x86-64 only; elsewhere nothing
            changes); ``"native"`` leaves the libraries to pick their fastest path.

    Returns:
        ``{"mode": mode actually in force, "aten": ATen's CPU capability}`` for the record.

    Raises:
        ValueError: An unknown ``mode``.
    """
    if mode not in ("native", "portable"):
        raise ValueError(f"cpu_kernels: must be 'native' or 'portable', got {mode!r}")
    effective = mode
    if mode == "portable":
        if is_x86():
            os.environ.update(PORTABLE_ENV)
        else:
            effective = "native"
            logger.warning("cpu_kernels: 'portable' applies to x86-64 CPUs; using native kernels")
    capability = torch.backends.cpu.get_cpu_capability()
    if effective == "portable" and capability.upper() not in ("AVX2", "DEFAULT"):
        # ATen fixed its kernels at the first computation of this process.
        logger.warning(
            "cpu_kernels: 'portable' was requested after this process had already computed "
            "with %s kernels; results are not portable. Start training in a fresh process.",
            capability,
        )
        effective = "native"
    return {"mode": effective, "aten": capability}


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kernel_record() -> dict[str, str | int]:
    """Where a CPU result was computed: processor, cores, ATen capability, torch version."""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count() or 0,
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": str(torch.__version__),
    }
