"""Shared test settings: deterministic, small, and light on this 2-core machine."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

# Tests must not spawn more threads than the CI machine has cores (or OMP_NUM_THREADS says).
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 0)) or min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True)
def _ieee_main_thread() -> object:
    """An in-process training flushes denormals on this thread; the next test starts IEEE."""
    yield
    torch.set_flush_denormal(False)
