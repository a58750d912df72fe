"""Building frozen config dataclasses from ``params.yaml`` sections, with clear errors.

Every ``params.yaml`` the package reads (the stages, the report's experiment table, the
benchmarks) goes through :func:`load_yaml`, whose :class:`ParamsLoader` reads numbers
the way YAML 1.2 (and so DVC) does: ``1e-05`` and ``1e-4`` are floats, where PyYAML's
YAML 1.1 rules would read them as strings.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

T = TypeVar("T")

#: Settings of the ``train`` section that change no weight and no number: a restart that
#: differs only in these resumes, and a measurement made under other values still describes
#: the study. Here, not in :mod:`mtunet.training`, so code that must not load torch (the
#: report) can read it.
TRAIN_RUNTIME_FIELDS = (
    "num_workers",
    "pin_memory",
    "progress",
    "val_batch_size",
    "resume",
    "checkpoint_every",
)

_FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.2 core-schema floats (sign optional everywhere, ``1e-5`` without a dot, ``.5``), plus
# the YAML 1.1 forms PyYAML already read as floats (``1_000.5``, sexagesimal ``1:30.0``).
# A plain integer never matches (ints stay ints), nor anything with trailing text.
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class ParamsLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads every YAML 1.2 float as a float.

    PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent: ``1e-05``
    (what ``dvc exp run -S train.lr=0.00001`` writes), ``1e-4``, ``1.0e5`` and ``-.5``
    load as strings. This loader swaps only the float resolver; ints, booleans, nulls,
    dates and strings resolve as in ``yaml.safe_load``, which itself is left unchanged.
    """

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, _FLOAT_RE if tag == _FLOAT_TAG else regexp) for tag, regexp in resolvers]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`ParamsLoader` (safe: plain YAML types only).

    Raises:
        yaml.YAMLError: Malformed YAML.
    """
    return yaml.load(text, Loader=ParamsLoader)  # a SafeLoader subclass


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Coerce YAML values to the annotated type: lists to tuples, ints to floats."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"{where}: unsupported value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _convert(v, a, f"{where}[{i}]")
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{where}: must be one of {list(args)}, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """Build the frozen dataclass ``cls`` from a mapping, e.g. a ``params.yaml`` section.

    Args:
        cls: A dataclass type whose fields have defaults for every key ``data`` may omit.
        data: The mapping (``None`` means all defaults).
        where: Name of the section for error messages, e.g. ``"model"``.

    Raises:
        ValueError: Naming ``where.key`` for an unknown key or a value of the wrong type.
            Range checks live in each dataclass's ``__post_init__``.
    """
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(names)}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def from_dict_for(
    classes: Mapping[str, type[T]], name: str, data: Mapping[str, Any] | None, where: str
) -> T:
    """:func:`from_dict` with the dataclass chosen by ``name`` (e.g. a dataset).

    Raises:
        ValueError: ``name`` is not a key of ``classes``, or as :func:`from_dict`.
    """
    if name not in classes:
        raise ValueError(f"dataset: must be one of {list(classes)}, got {name!r}")
    return from_dict(classes[name], data, where)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict of a config dataclass (tuples become lists), for JSON and checkpoints."""
    out = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def load_params(path: str | os.PathLike[str] = "params.yaml") -> dict[str, Any]:
    """Read ``params.yaml`` (numbers as :func:`load_yaml` reads them).

    Raises:
        FileNotFoundError: Naming the file when it is missing.
        ValueError: Naming the file when it is not YAML or not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: params file not found")
    try:
        params = load_yaml(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML ({exc})") from exc
    if not isinstance(params, dict):
        raise ValueError(f"{p}: expected a mapping at the top level")
    return params


def train_section(params: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """The ``train`` section as one dataset's runs read it.

    ``train.epochs`` is a number for every dataset or a mapping dataset -> epochs (the quick
    default trains the cardiac phantoms, whose structures are learnt sooner, for fewer).

    Raises:
        ValueError: Naming ``train.epochs`` when the mapping lacks ``dataset`` or names a
            dataset that ``datasets`` does not hold.
    """
    section = dict(params.get("train") or {})
    epochs = section.get("epochs")
    if isinstance(epochs, Mapping):
        known = list(params.get("datasets") or {})
        stray = sorted(set(epochs) - set(known))
        if stray:
            raise ValueError(
                f"train.epochs: {stray} not a dataset of the datasets section ({known})"
            )
        if dataset not in epochs:
            raise ValueError(
                f"train.epochs: no entry for {dataset!r} (it has {sorted(epochs)}); give "
                "one number of epochs for every dataset or one per dataset"
            )
        section["epochs"] = epochs[dataset]
    return section


def check(condition: bool, where: str, message: str) -> None:
    """Raise ``ValueError(f"{where}: {message}")`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(f"{where}: {message}")
