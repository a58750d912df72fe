"""Whether a state dict fits a network, and if not, what differs, briefly, and why.

A checkpoint of another width differs in almost every tensor (426 of MT-UNet's 487), so the
problems are summarised: the first few keys of each kind and a count of the rest, with the
likely cause where the shapes tell it: a different ``num_classes`` (only the output layer's
first dimension differs) or a different ``width_mult`` (channel widths differ throughout, all
by a similar factor).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

#: Keys shown per kind of problem before "... and N more".
MAX_LISTED = 5
# A width change alters most tensors; fewer (e.g. only a position embedding of another
# img_size) is not taken for one.
_WIDTH_SHARE = 0.5


def listed(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    """The first ``limit`` items joined by commas, then ``... and N more``."""
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else None


def _output_keys(own: Mapping[str, Any], num_classes: int) -> list[str]:
    """The output layer: the trailing entries whose first dimension is ``num_classes``.

    The built-in networks register their 1 x 1 classifier last (weight, bias); a network that
    does not gets no class hint.
    """
    keys: list[str] = []
    for key in reversed(list(own)):
        shape = _shape(own[key])
        if not shape or shape[0] != num_classes:
            break
        keys.append(key)
    return keys[::-1]


def _class_hint(
    own: Mapping[str, Any], state: Mapping[str, Any], num_classes: int | None
) -> str | None:
    if num_classes is None:
        return None
    shapes = {k: _shape(state.get(k)) for k in _output_keys(own, num_classes)}
    classes = {s[0] for s in shapes.values() if s}
    if len(classes) != 1 or num_classes in classes:
        return None
    return (
        f"a different num_classes (the weights' output layer {next(iter(shapes))} has "
        f"{classes.pop()} classes, the network {num_classes})"
    )


def _width_hint(
    own: Mapping[str, Any], state: Mapping[str, Any], mismatched: list[str], skip: set[str]
) -> str | None:
    common = [k for k in own if k in state and _shape(own[k])]
    ratios: list[float] = []
    keys = [k for k in mismatched if k not in skip]
    for key in keys:
        a, b = _shape(state[key]), _shape(own[key])
        if a is None or b is None or len(a) != len(b):
            return None  # a different kind of layer, not a different width
        ratios += [x / y for x, y in zip(a, b, strict=True) if x != y and y > 0]
    if not ratios or len(keys) < _WIDTH_SHARE * len(common):
        return None
    if not (all(r > 1 for r in ratios) or all(r < 1 for r in ratios)):
        return None
    factor = statistics.median(ratios)
    return (
        f"a different width_mult (the weights' channel widths are about {factor:.3g}x the "
        "network's)"
    )


def fit_problems(
    own: Mapping[str, Any], state: Mapping[str, Any], num_classes: int | None = None
) -> list[str]:
    """What keeps ``state`` from loading strictly into a network with state dict ``own``.

    Args:
        own: The network's ``state_dict()``.
        state: The weights to load (key -> tensor).
        num_classes: The network's classes, to tell a different ``num_classes`` apart;
            None skips that hint.

    Returns:
        One line per kind of problem (missing keys, unexpected keys, shape mismatches, each
        with its count and the first :data:`MAX_LISTED` keys) and the likely cause of the
        mismatches when the shapes tell it; empty when the weights fit.
    """
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and _shape(state[k]) != _shape(own[k])]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {listed(unexpected)}")
    if mismatched:
        shown = [f"{k} (checkpoint {_shape(state[k])}, model {_shape(own[k])})" for k in mismatched]
        problems.append(f"shape mismatches ({len(mismatched)}): {listed(shown)}")
        class_hint = _class_hint(own, state, num_classes)
        head = set(_output_keys(own, num_classes)) if class_hint and num_classes else set()
        hints = [h for h in (class_hint, _width_hint(own, state, mismatched, head)) if h]
        if hints:
            problems.append("likely cause: " + " and ".join(hints))
    return problems
