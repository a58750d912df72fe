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
