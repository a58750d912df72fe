"""Atomic outputs and sorted-key JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mtunet.fileio import atomic_path, dumps_json, read_json, write_json


def test_atomic_path_renames_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".")
        assert tmp.suffix == ".tmp" and not tmp.match("*.npz")
        with open(tmp, "wb") as f:
            np.savez(f, x=np.arange(3))
        assert not target.exists()
    assert np.load(target)["x"].tolist() == [0, 1, 2]


def test_interrupted_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    write_json(target, {"a": 1})
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise KeyboardInterrupt
    assert read_json(target) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_json_is_sorted_and_plain(tmp_path: Path) -> None:
    text = dumps_json({"b": (1, 2), "a": np.float32(0.5), "c": math.nan, "d": Path("x")})
    assert text.index('"a"') < text.index('"b"') < text.index('"c"')
    assert json.loads(text) == {"a": 0.5, "b": [1, 2], "c": None, "d": "x"}


def test_read_json_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ValueError, match=r"bad\.json"):
        read_json(bad)
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        read_json(tmp_path / "missing.json")
