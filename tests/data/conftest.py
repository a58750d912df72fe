"""Fixtures of the data tests (helpers live in rawdata_helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
from rawdata_helpers import LPS_AFFINE


@pytest.fixture()
def lps_affine() -> np.ndarray:
    return LPS_AFFINE.copy()
