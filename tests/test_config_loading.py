"""Config dataclasses from params.yaml sections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from mtunet.config import check, from_dict, load_params, to_dict


@dataclass(frozen=True)
class _Cfg:
    n: int = 1
    lr: float = 0.1
    size: int | tuple[int, int] = 8
    dims: tuple[int, int] = (2, 4)
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    name: str | None = None

    def __post_init__(self) -> None:
        check(self.n >= 1, "n", f"must be >= 1, got {self.n}")


def test_from_dict_converts_yaml_types() -> None:
    cfg = from_dict(_Cfg, {"lr": 1, "size": [3, 4], "dims": [5, 6], "mode": "b", "name": None}, "s")
    assert cfg == _Cfg(lr=1.0, size=(3, 4), dims=(5, 6), mode="b")
    assert isinstance(cfg.lr, float)
    assert to_dict(cfg)["dims"] == [5, 6]
    assert from_dict(_Cfg, None, "s") == _Cfg()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nope": 1}, r"s: unknown key\(s\) \['nope'\]"),
        ({"n": "3"}, "s.n: expected an integer"),
        ({"n": True}, "s.n: expected an integer"),
        ({"flag": 1}, "s.flag: expected true or false"),
        ({"dims": [1, 2, 3]}, "s.dims: expected 2 values"),
        ({"mode": "c"}, "s.mode: must be one of"),
        ({"n": 0}, "n: must be >= 1"),
    ],
)
def test_from_dict_errors_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_dict(_Cfg, data, "s")


def test_load_params_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothere\.yaml"):
        load_params(tmp_path / "nothere.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        load_params(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_params(bad)


def test_from_dict_for_picks_the_class_by_name() -> None:
    from mtunet.config import from_dict_for

    classes = {"a": _Cfg}
    assert from_dict_for(classes, "a", {"n": 3}, "s") == _Cfg(n=3)
    with pytest.raises(ValueError, match=r"dataset: must be one of \['a'\], got 'b'"):
        from_dict_for(classes, "b", None, "s")
    with pytest.raises(ValueError, match=r"s: unknown key"):
        from_dict_for(classes, "a", {"x": 1}, "s")
