"""benchmarks/loader_speed.py at a tiny size: it runs, and its bit-for-bit check can fail."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import loader_speed
from loader_speed import Variant, measure, write_slices

TINY = ["--slices", "24", "--epochs", "2", "--size", "64", "--img-size", "32"]


@pytest.mark.slow
def test_every_variant_yields_the_same_batches(tmp_path: Path) -> None:
    out = tmp_path / "loader.json"
    assert loader_speed.main([*TINY, "--workers", "0", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    names = [r["variant"] for r in result["rows"]]
    assert names == [
        "workers=0",
        "workers=1",
        "workers=1, persistent",
        "workers=1, prefetch=4",
        "workers=1, cached",
        "workers=1, cached, persistent",
    ]
    assert all(r["same_batches_as_workers_0"] for r in result["rows"])
    assert len({r["sha256"] for r in result["rows"]}) == 1
    assert all(r["slices_per_second"] > 0 and len(r["epoch_seconds"]) == 2 for r in result["rows"])
    needs = result["workers_needed"]
    assert set(needs) == {"compiled bfloat16", "eager float32"}
    assert set(needs["eager float32"]) == set(names[1:])
    assert all(n >= 1 for v in needs.values() for n in v.values())


@pytest.mark.slow
def test_kept_workers_without_the_epoch_key_are_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Persistent workers that never see set_epoch repeat epoch 0's augmentation: the
    digest must tell."""
    manifest = write_slices(tmp_path, n=24, size=64)
    reference = measure(manifest, 32, Variant("workers=0", 0), epochs=2)["sha256"]
    assert measure(manifest, 32, Variant("keyed", 1, persistent=True), 2)["sha256"] == reference
    monkeypatch.setattr(loader_speed, "EpochKeyedSlices", lambda data: data)
    monkeypatch.setattr(loader_speed, "EpochKeyedBatches", lambda sampler: sampler)
    plain = measure(manifest, 32, Variant("plain", 1, persistent=True), epochs=2)["sha256"]
    assert plain != reference
