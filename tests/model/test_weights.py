"""Why a state dict does not fit a network: counts, the first keys, the likely cause."""

from __future__ import annotations

import torch

from mtunet.model.weights import MAX_LISTED, fit_problems, listed


def _state(width: int, classes: int, blocks: int = 6) -> dict[str, torch.Tensor]:
    """A toy network's state dict: ``blocks`` conv layers of ``width``, then a classifier."""
    state = {"stem.weight": torch.zeros(width, 1, 3, 3)}
    for i in range(blocks):
        state[f"block{i}.weight"] = torch.zeros(width, width, 3, 3)
        state[f"block{i}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    state["head.weight"] = torch.zeros(classes, width, 1, 1)
    state["head.bias"] = torch.zeros(classes)
    return state


def test_weights_that_fit_have_no_problems() -> None:
    assert fit_problems(_state(16, 4), _state(16, 4), num_classes=4) == []


def test_listing_shows_the_first_keys_and_counts_the_rest() -> None:
    items = [f"k{i}" for i in range(12)]
    assert listed(items) == "k0, k1, k2, k3, k4 ... and 7 more"
    assert listed(items[:MAX_LISTED]) == "k0, k1, k2, k3, k4"


def test_a_width_change_is_summarised_and_named() -> None:
    problems = fit_problems(_state(16, 4), _state(32, 4), num_classes=4)
    assert problems[0].startswith("shape mismatches (8): stem.weight (checkpoint (32, 1, 3, 3)")
    assert problems[0].endswith(" ... and 3 more")
    assert problems[0].count("checkpoint (") == MAX_LISTED
    assert problems[1] == (
        "likely cause: a different width_mult (the weights' channel widths are about 2x the "
        "network's)"
    )
    assert "num_classes" not in problems[1]


def test_a_class_change_is_named() -> None:
    problems = fit_problems(_state(16, 4), _state(16, 9), num_classes=4)
    assert problems == [
        "shape mismatches (2): head.weight (checkpoint (9, 16, 1, 1), model (4, 16, 1, 1)), "
        "head.bias (checkpoint (9,), model (4,))",
        "likely cause: a different num_classes (the weights' output layer head.weight has 9 "
        "classes, the network 4)",
    ]
    # Without the network's classes the cause is not told.
    assert len(fit_problems(_state(16, 4), _state(16, 9))) == 1


def test_both_causes_at_once() -> None:
    problems = fit_problems(_state(16, 4), _state(8, 9), num_classes=4)
    assert problems[0].startswith("shape mismatches (9): ")
    assert "a different num_classes" in problems[1] and "about 0.5x" in problems[1]


def test_no_cause_is_guessed_from_a_few_odd_tensors() -> None:
    # One tensor of another size (e.g. a position embedding of another img_size) is neither.
    weights = _state(16, 4)
    weights["block2.weight"] = torch.zeros(16, 16, 5, 5)
    assert fit_problems(_state(16, 4), weights, num_classes=4) == [
        "shape mismatches (1): block2.weight (checkpoint (16, 16, 5, 5), model (16, 16, 3, 3))"
    ]
    # Missing and unexpected keys are counted and listed the same way.
    weights = {f"other{i}": v for i, v in enumerate(_state(16, 4).values())}
    problems = fit_problems(_state(16, 4), weights, num_classes=4)
    assert problems[0].startswith("missing keys (15): stem.weight, block0.weight, ")
    assert problems[0].endswith(" ... and 10 more")
    assert problems[1].startswith("unexpected keys (15): other0, other1, ")
