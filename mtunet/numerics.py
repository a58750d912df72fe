"""Which CPU kernels a process computes with, and what that makes reproducible.

PyTorch's CPU arithmetic comes from three libraries, each of which picks its code path from
the processor it finds: ATen's own vectorised kernels (AVX2 or AVX-512), oneDNN's
convolutions (``ONEDNN_MAX_CPU_ISA``) and MKL's matrix products (``MKL_CBWR``). Different
paths sum in different orders, so the same seed gives weights that differ in the last bits
on two machines, and a training run amplifies that into visibly different metrics.

Three kernel sets (``train.cpu_kernels``, ``evaluate.cpu_kernels``):

* ``native``: the fastest path each library finds on this CPU; bit for bit only on the same
  CPU model (and software, and thread count).
* ``portable``: ATen and oneDNN capped at AVX2, MKL asked for its AVX2 reproducibility branch
  (``MKL_CBWR=AVX2``). MKL honours that branch on Intel CPUs only; on other vendors it falls
  back to its automatic branch without a word (Intel's documentation says so, and
  :func:`mkl_branch` reads the branch in force). So the same bits on CPUs of one vendor,
  whatever their vector width (an AVX-512 and an AVX2-only machine), but not between an
  Intel and an AMD CPU: there MKL's small matrix products (the window attention's, the
  skinny projections') round differently (``benchmarks/cpu_reproducibility.py``).
* ``compatible``: ``portable`` with MKL's ``COMPATIBLE`` branch (SSE2 code, no approximate
  reciprocals), the one branch MKL honours on every vendor: the same bits on Intel and AMD
  CPUs, at the price of slower matrix products (measured in the benchmark above).

The settings are environment variables that each library reads once, when it first
computes; :func:`pin_cpu_kernels` must therefore run before the process does any tensor
arithmetic, and says so when it ran too late. Every kernel set needs the same software and
the same thread count (MKL's and oneDNN's reductions are split by thread): torch takes one
thread per core unless told, so :func:`pin_threads` (``train.threads``,
``evaluate.threads``) fixes the count, and a machine with more or fewer cores computes the
same bits.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from pathlib import Path
from typing import Literal

import torch

logger = logging.getLogger(__name__)

#: The environment that caps ATen, oneDNN and MKL at their AVX2 code paths.
PORTABLE_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",
}
#: ``portable`` with MKL's vendor-neutral branch.
COMPATIBLE_ENV: dict[str, str] = {**PORTABLE_ENV, "MKL_CBWR": "COMPATIBLE"}
KERNEL_ENV: dict[str, dict[str, str]] = {"portable": PORTABLE_ENV, "compatible": COMPATIBLE_ENV}

CpuKernels = Literal["native", "portable", "compatible"]
CPU_KERNELS: tuple[str, ...] = ("native", "portable", "compatible")

# MKL's code branches (mkl_cbwr_get's values, from MKL's headers).
_MKL_BRANCHES = {
    1: "OFF",
    2: "AUTO",
    3: "COMPATIBLE",
    4: "SSE2",
    6: "SSSE3",
    7: "SSE4_1",
    8: "SSE4_2",
    9: "AVX",
    10: "AVX2",
    11: "AVX512_MIC",
    12: "AVX512",
    13: "AVX512_MIC_E1",
    14: "AVX512_E1",
}


def is_x86() -> bool:
    """True on x86-64 processors, the only ones the capped kernel sets apply to."""
    return platform.machine().lower() in ("x86_64", "amd64")


def check_kernels(value: object, where: str) -> None:
    """ValueError naming ``where`` unless ``value`` is one of :data:`CPU_KERNELS`."""
    if value not in CPU_KERNELS:
        raise ValueError(f"{where}: must be one of {list(CPU_KERNELS)}, got {value!r}")


def pin_cpu_kernels(mode: CpuKernels) -> dict[str, str | None]:
    """Select the CPU kernels of this process (and of processes it starts afterwards).

    Args:
        mode: ``"portable"`` or ``"compatible"`` sets :data:`KERNEL_ENV` ``[mode]`` (x86-64
            only; elsewhere nothing changes); ``"native"`` leaves the libraries to pick
            their fastest path.

    Returns:
        ``{"mode": mode actually in force, "aten": ATen's CPU capability}`` for the record.

    Raises:
        ValueError: An unknown ``mode``.
    """
    check_kernels(mode, "cpu_kernels")
    effective = mode
    if mode != "native":
        if is_x86():
            os.environ.update(KERNEL_ENV[mode])
        else:
            effective = "native"
            logger.warning("cpu_kernels: %r applies to x86-64 CPUs; using native kernels", mode)
    capability = torch.backends.cpu.get_cpu_capability()
    if effective != "native" and capability.upper() not in ("AVX2", "DEFAULT"):
        # ATen fixed its kernels at the first computation of this process.
        logger.warning(
            "cpu_kernels: %r was requested after this process had already computed "
            "with %s kernels; results are not portable. Start in a fresh process.",
            mode,
            capability,
        )
        effective = "native"
    return {"mode": effective, "aten": capability}


#: The thread count this process had before :func:`pin_threads` first changed it.
_THREADS_BEFORE_PIN: int | None = None


#: What a thread setting must be (``train.threads``, ``evaluate.threads``).
THREADS_RULE = "must be an integer >= 1, or null for the process's own count"


def valid_threads(value: object) -> bool:
    """Whether ``value`` is a thread setting: None or an integer >= 1."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


def pin_threads(threads: int | None) -> dict[str, int]:
    """Fix torch's CPU threads (ATen, oneDNN and MKL alike) for this process.

    MKL, oneDNN and ATen split their sums by thread, so the thread count decides the bits of
    a CPU result; fixing it makes a machine with more or fewer cores compute what this one
    does (with the same kernels, :func:`pin_cpu_kernels`).

    Args:
        threads: Threads to use, or None to keep the process's own count (its cores, or
            ``OMP_NUM_THREADS``).

    Returns:
        ``{"threads": in force now, "threads_default": what the process had before the first
        pin}`` for the record.

    Raises:
        ValueError: ``threads`` neither None nor an integer >= 1.
    """
    global _THREADS_BEFORE_PIN
    if not valid_threads(threads):
        raise ValueError(f"threads: {THREADS_RULE}, got {threads!r}")
    if _THREADS_BEFORE_PIN is None:
        _THREADS_BEFORE_PIN = torch.get_num_threads()
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return {"threads": torch.get_num_threads(), "threads_default": default_threads()}


#: What a denormal setting must be (``train.flush_denormals``, ``evaluate.flush_denormals``).
DENORMALS_RULE = "must be true or false"


def pin_denormals(flush: bool) -> str:
    """Compute denormal (subnormal) floats as zero in this process, or keep them.

    A trained network's activations and gradients hold many numbers below float32's smallest
    normal (1.2e-38), and x86 CPUs compute with them through a slow microcode path: on an
    Intel Xeon a trained MT-UNet's training step takes 3.5x as long as a fresh one
    (``benchmarks/denormal_step.py``). Flushing (the FTZ and DAZ bits of MXCSR) makes them
    zero instead, which changes results only in numbers far below any the network's output
    depends on, but changes their bits: a setting that decides what a run computes.

    The bits belong to each thread, and torch's worker threads copy them from the main
    thread when they start: this must run before the process's first parallel computation
    (as :func:`pin_cpu_kernels` must), and :func:`denormal_mode` checks every thread.

    Args:
        flush: True computes denormals as zero; False keeps them (IEEE arithmetic).

    Returns:
        :func:`denormal_mode` after the change: ``"flushed"``, ``"kept"`` or ``"mixed"``.

    Raises:
        ValueError: ``flush`` not a bool.
    """
    if not isinstance(flush, bool):
        raise ValueError(f"flush_denormals: {DENORMALS_RULE}, got {flush!r}")
    if not torch.set_flush_denormal(flush) and flush:
        logger.warning("flush_denormals: this CPU cannot flush denormals; they are kept")
    mode = denormal_mode()
    if mode == "mixed":
        logger.warning(
            "flush_denormals: %s was requested after this process had started its worker "
            "threads, which kept the old setting; results depend on which thread computes "
            "what. Start in a fresh process.",
            flush,
        )
    return mode


def denormal_mode() -> str:
    """How every torch thread of this process computes denormals, found by computing some.

    Multiplies a denormal by 1 in enough elements that each of torch's threads takes a
    share: the products are zero where a thread flushes and denormal where it keeps them.

    Returns:
        ``"flushed"`` (every thread), ``"kept"`` (none) or ``"mixed"``.
    """
    # Written as integers: a float fill would convert the value on this thread, flushing
    # it here before any worker sees it. ATen splits element-wise work in grains of 32768.
    n = torch.get_num_threads() * 65536
    denormal = torch.full((n,), 1 << 21, dtype=torch.int32).view(torch.float32)  # 2.9e-39
    zeros = int(((denormal * 1.0).view(torch.int32) == 0).sum())
    if zeros == n:
        return "flushed"
    return "kept" if zeros == 0 else "mixed"


def default_threads() -> int:
    """The threads this process had before :func:`pin_threads` (now, if it never ran)."""
    return _THREADS_BEFORE_PIN or torch.get_num_threads()


def _cpuinfo(field: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_vendor() -> str:
    """``GenuineIntel``, ``AuthenticAMD``, ... (``/proc/cpuinfo``), or ``unknown``."""
    return _cpuinfo("vendor_id") or "unknown"


def mkl_branch() -> str | None:
    """MKL's reproducibility branch in force (``AVX2``, ``AUTO``, ``COMPATIBLE``, ``OFF``).

    Read from the MKL inside PyTorch's CPU library, which shows what ``MKL_CBWR`` became on
    this CPU: ``AVX2`` is honoured on Intel CPUs only. None where it cannot be read (a build
    without MKL, another platform).
    """
    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        get = ctypes.CDLL(str(lib)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype = ctypes.c_int
    get.argtypes = [ctypes.c_int]
    value = int(get(1))  # 1: the branch (MKL_CBWR_BRANCH)
    return _MKL_BRANCHES.get(value, str(value))


def kernel_record() -> dict[str, str | int | None]:
    """Where a CPU result was computed: processor, vendor, cores, kernels, denormals, torch."""
    return {
        "cpu": cpu_name(),
        "vendor": cpu_vendor(),
        "cores": os.cpu_count() or 0,
        "threads": torch.get_num_threads(),
        "threads_default": default_threads(),
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_branch": mkl_branch(),
        "denormals": denormal_mode(),
        "torch": str(torch.__version__),
    }
