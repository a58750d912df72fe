"""This thread's floating-point environment: denormal floats flushed to zero, or IEEE.

Training flushes denormals for speed (:func:`mtunet.numerics.pin_denormals`); code outside
torch that was written for IEEE arithmetic runs inside :func:`ieee_denormals`. scipy's
``cKDTree`` is such code: on one set of 860 integer surface coordinates of the quick ACDC
study its build crashes the process (SIGSEGV) with denormals flushed and is fine without
(``tests/fixtures/kdtree_ftz_points.npy``). No torch import unless this thread flushes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

#: The bits of a float32 denormal (about 2.9e-39), written as an integer so that no float
#: conversion on a flushing thread can zero it before it is used.
_DENORMAL_BITS = 1 << 21


def flushes_denormals() -> bool:
    """Whether this thread computes denormal floats as zero (the FTZ/DAZ bits of MXCSR).

    Found by computing one denormal product with numpy on this thread.
    """
    d = np.array([_DENORMAL_BITS], dtype=np.int32).view(np.float32)
    return int((d * np.float32(1.0)).view(np.int32)[0]) == 0


@contextlib.contextmanager
def ieee_denormals() -> Iterator[None]:
    """Compute with denormals on this thread inside the block, as IEEE arithmetic does.

    Restores flushing afterwards where this thread flushed before; other threads (torch's
    workers) keep their own setting.
    """
    if not flushes_denormals():
        yield
        return
    import torch

    torch.set_flush_denormal(False)
    try:
        yield
    finally:
        torch.set_flush_denormal(True)
