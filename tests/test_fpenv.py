"""Denormals flushed for torch's speed, IEEE arithmetic kept where other libraries need it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mtunet.fpenv import flushes_denormals, ieee_denormals

POINTS = Path(__file__).parent / "fixtures" / "kdtree_ftz_points.npy"

_CODE = (
    "import json, sys, numpy as np, torch\n"
    "from scipy.spatial import cKDTree\n"
    "from mtunet.fpenv import flushes_denormals, ieee_denormals\n"
    "from mtunet.metrics.surface import bbox, surface_distances\n"
    "p = np.load(sys.argv[1]).astype(np.int64)\n"
    "a = np.zeros(tuple(p.max(0) + 2), dtype=bool)\n"
    "a[tuple(p.T)] = True\n"
    "b = np.roll(a, 1, axis=1)\n"
    "if sys.argv[2] == 'flush':\n"
    "    torch.set_flush_denormal(True)\n"
    "before = flushes_denormals()\n"
    "with ieee_denormals():\n"
    "    inside = flushes_denormals()\n"
    "    cKDTree(p)\n"  # crashes this scipy with denormals flushed
    "after = flushes_denormals()\n"
    "ba, bb = bbox(a), bbox(b)\n"
    "(d_ab, d_ba), = surface_distances(a[ba], ba, b[bb], bb, [None])\n"
    "print(json.dumps({'before': before, 'inside': inside, 'after': after,\n"
    "                  'd': [float(d_ab.sum()), float(d_ba.sum()), len(d_ab)]}))\n"
)


def _run(setting: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CODE, str(POINTS), setting], capture_output=True, text=True
    )
    assert out.returncode == 0, f"{setting}: exit {out.returncode}\n{out.stderr[-2000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kdtree_and_surface_distances_run_in_ieee_arithmetic_in_a_flushing_process() -> None:
    flushed, ieee = _run("flush"), _run("keep")
    assert (flushed["before"], flushed["inside"], flushed["after"]) == (True, False, True)
    assert (ieee["before"], ieee["inside"], ieee["after"]) == (False, False, False)
    assert flushed["d"] == ieee["d"] and ieee["d"][2] > 100


def test_ieee_block_in_an_ieee_thread_changes_nothing() -> None:
    assert not flushes_denormals()  # the test process never flushes on this thread
    with ieee_denormals():
        d = np.array([1 << 21], dtype=np.int32).view(np.float32)
        assert (d * np.float32(1.0)).view(np.int32)[0] == 1 << 21
    assert not flushes_denormals()
