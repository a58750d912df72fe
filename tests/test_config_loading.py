"""Config dataclasses from params.yaml sections."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from mtunet.config import check, from_dict, load_params, load_yaml, to_dict, train_section


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-05", 1e-05),  # what `dvc exp run -S train.lr=0.00001` writes
        ("1e-4", 1e-4),
        ("1E+3", 1000.0),
        ("2e3", 2000.0),
        ("-3e-2", -0.03),
        ("+1.0e-4", 1e-4),
        ("1.0e5", 1e5),  # YAML 1.1 wants a sign in the exponent
        (".5", 0.5),
        ("-.5", -0.5),
        ("+.5e1", 5.0),
        ("1.", 1.0),
        ("0.001", 0.001),
        ("1_000.5", 1000.5),  # YAML 1.1 forms PyYAML already read stay floats
        (".inf", math.inf),
        ("-.Inf", -math.inf),
        ("+.INF", math.inf),
    ],
)
def test_yaml_numbers_load_as_floats(text: str, expected: float) -> None:
    value = load_yaml(f"x: {text}\n")["x"]
    assert type(value) is float
    assert value == pytest.approx(expected, rel=1e-12)


def test_yaml_nan_loads_as_float() -> None:
    values = load_yaml("a: .nan\nb: .NaN\nc: .NAN\n")
    assert all(type(v) is float and math.isnan(v) for v in values.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10", 10),
        ("-3", -3),
        ("+7", 7),
        ("0", 0),
        ("1_000", 1000),
        ("0x1e", 30),  # hex with an "e" digit is still an int
        ("1.2.3", "1.2.3"),  # version strings
        ("v1e5", "v1e5"),
        ("1e5abc", "1e5abc"),
        ("1e", "1e"),
        ("e5", "e5"),
        ("1e5.0", "1e5.0"),
        ("1e-", "1e-"),
        (".e5", ".e5"),
        ("'1e-5'", "1e-5"),  # quoted stays a string
        ('"3"', "3"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("true", True),
        ("null", None),
        ("2024-01-02", datetime.date(2024, 1, 2)),
    ],
)
def test_yaml_other_scalars_are_unchanged(text: str, expected: Any) -> None:
    value = load_yaml(f"x: {text}\n")["x"]
    assert type(value) is type(expected)
    assert value == expected
    assert value == yaml.safe_load(f"x: {text}\n")["x"]  # as PyYAML reads them


def test_yaml_loader_leaves_pyyaml_safe_load_alone() -> None:
    load_yaml("x: 1e-5\n")
    assert yaml.safe_load("x: 1e-5\n") == {"x": "1e-5"}  # no global resolver change


def test_exponent_lr_from_params_passes_train_validation(tmp_path: Path) -> None:
    from mtunet.training import TrainConfig

    path = tmp_path / "params.yaml"
    for text, lr in [("1e-05", 1e-05), ("1e-4", 1e-4), ("5E-3", 5e-3)]:
        path.write_text(f"train:\n  lr: {text}\n  weight_decay: 1e-4\n  epochs: 3\n")
        params = load_params(path)
        cfg = TrainConfig.from_dict(params["train"])
        assert cfg.lr == pytest.approx(lr) and isinstance(cfg.lr, float)
        assert cfg.weight_decay == pytest.approx(1e-4)
        assert cfg.epochs == 3 and isinstance(cfg.epochs, int)


def test_report_reads_exponent_params_as_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mtunet.report.experiments import collect_experiments

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no git repo

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  lr: 1e-05\n  epochs: 2\n  tag: 1.2.3\n")
    ws = collect_experiments(tmp_path, [], tmp_path / "metrics", params)[-1]
    assert ws.kind == "workspace"
    assert ws.params == {"train.lr": 1e-05, "train.epochs": 2, "train.tag": "1.2.3"}
    assert type(ws.params["train.lr"]) is float


@pytest.mark.parametrize("section", ["train", "evaluate"])
def test_threads_are_checked_where_they_are_read(section: str) -> None:
    from mtunet.evaluation import EvalConfig
    from mtunet.training import TrainConfig

    cls = TrainConfig if section == "train" else EvalConfig
    assert cls.from_dict({"threads": 2}, section).threads == 2
    assert cls.from_dict({"threads": None}, section).threads is None
    with pytest.raises(ValueError, match=r"threads: must be an integer >= 1, or null"):
        cls.from_dict({"threads": 0}, section)


def test_train_section_resolves_per_dataset_epochs() -> None:
    params = {"datasets": {"synapse": {}, "acdc": {}}, "train": {"epochs": 35, "lr": 0.002}}
    assert train_section(params, "acdc") == {"epochs": 35, "lr": 0.002}
    params["train"]["epochs"] = {"synapse": 35, "acdc": 20}
    assert train_section(params, "acdc") == {"epochs": 20, "lr": 0.002}
    assert train_section(params, "synapse")["epochs"] == 35
    assert params["train"]["epochs"] == {"synapse": 35, "acdc": 20}  # not modified
    with pytest.raises(ValueError, match=r"train\.epochs: no entry for 'acdc'"):
        train_section({**params, "train": {"epochs": {"synapse": 35}}}, "acdc")
    with pytest.raises(ValueError, match=r"train\.epochs: \['acdcc'\] not a dataset"):
        train_section({**params, "train": {"epochs": {"synapse": 3, "acdcc": 2}}}, "synapse")
