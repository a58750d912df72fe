"""Atomic file output and sorted-key JSON, shared by every stage.

Every file a stage writes goes to a hidden temporary name in the same folder and is
renamed into place only when complete, so an interrupted stage never leaves a file
that a later stage (or a glob such as ``*.npz``) would accept.

Files get the permissions ``open()`` would give them (``0o666`` less the process umask,
and a folder's default ACL), not ``tempfile.mkstemp``'s owner-only ``0o600``: outputs on
a shared machine or in a shared DVC cache stay readable by the group as the user chose.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_CREATE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_CREATE_ATTEMPTS = 100


def _create_temp(target: Path) -> Path:
    """Create an empty, new hidden file next to ``target``, mode ``0o666 & ~umask``.

    Like ``tempfile.mkstemp`` (a fresh random name, ``O_EXCL`` so no existing file or link
    is reused) except for the mode: the kernel applies the umask (and any default ACL)
    at creation, exactly as for ``open(path, "w")``, with no process-wide umask call.
    """
    for _ in range(_CREATE_ATTEMPTS):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, _CREATE_FLAGS, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{target}: no free temporary name after {_CREATE_ATTEMPTS} tries")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The temporary name starts with a dot and ends in ``.tmp`` so that no pattern a
    later stage globs for (``*.npz``, ``*.npy.h5``, ``*.json``) can match it. On an
    exception the temporary file is removed and ``path`` is left untouched.

    The file is created empty with the mode ``open()`` would give (``0o666 & ~umask``);
    writers that reopen it (``open(tmp, "wb")``, ``h5py.File(tmp, "w")``, ``to_csv``)
    truncate it and keep that mode, which the rename carries to ``path``.

    Writers that append suffixes (``np.savez`` adds ``.npz`` to names without it)
    must write through an open file object: ``open(tmp, "wb")``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert tuples, paths, numpy scalars and arrays into plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, torch tensors
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and obj != obj:  # NaN is not JSON: write null
        return None
    return obj


def dumps_json(obj: Any) -> str:
    """Serialise ``obj`` as indented JSON with sorted keys and a final newline."""
    return json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as sorted-key JSON to ``path`` atomically (NaN becomes null)."""
    write_text(path, dumps_json(obj))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, with an error that names the file when it is missing or invalid."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: file not found")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: not valid JSON ({exc})") from exc
