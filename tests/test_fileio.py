"""Atomic outputs and sorted-key JSON."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from mtunet.fileio import atomic_path, dumps_json, read_json, write_bytes, write_json


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


@pytest.fixture()
def set_umask() -> Iterator[Callable[[int], None]]:
    """Set the (process-wide) umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    try:
        yield set_mask
    finally:
        os.umask(old)


def _write_savez(path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # how write_npz / torch.save write
        np.savez(f, x=np.arange(3))


def _write_h5(path: Path) -> None:
    import h5py  # a dependency: never skip

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:  # how write_h5 writes
        f["x"] = np.arange(3)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
@pytest.mark.parametrize(
    ("umask", "mode"),
    [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
    ids=["umask022", "umask077", "umask002"],
)
@pytest.mark.parametrize(
    "write",
    [
        lambda p: write_json(p, {"a": 1}),
        lambda p: write_bytes(p, b"x"),
        _write_savez,
        _write_h5,
    ],
    ids=["json", "bytes", "savez", "h5"],
)
def test_written_files_get_the_umask_mode(
    tmp_path: Path,
    set_umask: Callable[[int], None],
    umask: int,
    mode: int,
    write: Callable[[Path], None],
) -> None:
    # Like open(): 0666 & ~umask, so a shared machine or DVC cache can read the outputs.
    set_umask(umask)
    target = tmp_path / "out.bin"
    write(target)
    assert stat.S_IMODE(target.stat().st_mode) == mode
    write(target)  # replacing an existing file too
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_temporary_names_do_not_collide(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.exists() and second.exists()
        first.write_text("1")
        second.write_text("2")
    assert read_json(target) == 1  # the outer write lands last
