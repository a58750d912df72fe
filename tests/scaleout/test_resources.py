"""The ``resources`` section: parsing, errors, CPU-only clusters, the run's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtunet.config import load_params
from mtunet.scaleout.resources import ResourcesConfig, RunResources, stage_kind

REPO = Path(__file__).resolve().parents[2]


def test_defaults_and_overrides() -> None:
    cfg = ResourcesConfig.from_dict({"train": {"gpus": 0.5}, "other": {"cpus": 2}})
    assert cfg.train == RunResources(gpus=0.5, cpus=4)  # cpus keeps its default
    assert cfg.evaluate == RunResources(gpus=1.0, cpus=2)
    assert cfg.other == RunResources(gpus=0.0, cpus=2)
    assert ResourcesConfig.from_dict(None) == ResourcesConfig()


def test_stage_kinds_and_a_cluster_without_gpus() -> None:
    assert stage_kind("train@acdc-unet-1") == "train"
    assert stage_kind("train_ablation@acdc-win_size_2-1") == "train"
    assert stage_kind("evaluate_ablation@synapse-x-1") == "evaluate"
    assert stage_kind("compare@acdc") == stage_kind("report") == "other"
    cfg = ResourcesConfig()
    assert cfg.for_stage("train@acdc-unet-1", cluster_gpus=8).gpus == 1.0
    # No GPU anywhere: the run trains on the CPU instead of waiting for ever.
    assert cfg.for_stage("train@acdc-unet-1", cluster_gpus=0) == RunResources(0.0, 4)


def test_environment_sets_threads_and_the_allocation() -> None:
    assert RunResources(gpus=1, cpus=3).environment() == {
        "OMP_NUM_THREADS": "3",
        "MKL_NUM_THREADS": "3",
        "MTUNET_CPUS": "3",
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": {"gpus": 1.5}}, r"resources\.train\.gpus: must be 0, a fraction"),
        ({"train": {"gpus": -1}}, r"resources\.train\.gpus"),
        ({"evaluate": {"cpus": 0}}, r"resources\.evaluate\.cpus: must be >= 1"),
        ({"evaluate": {"cpus": 1.5}}, r"resources\.evaluate\.cpus: expected an integer"),
        ({"train": {"gpu": 1}}, r"resources\.train: unknown key\(s\) \['gpu'\]"),
        ({"training": {}}, r"resources: unknown key\(s\) \['training'\]"),
        ({"train": 1}, r"resources\.train: expected a mapping"),
        ({"other": {"gpus": 1}}, r"resources\.other\.gpus: data, comparison and report"),
        ([1], "resources: expected a mapping"),
    ],
)
def test_bad_values_name_the_key(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResourcesConfig.from_dict(data)  # type: ignore[arg-type]


def test_whole_gpu_counts_are_allowed() -> None:
    assert ResourcesConfig.from_dict({"train": {"gpus": 2}}).train.gpus == 2.0


@pytest.mark.parametrize(
    "path",
    ["params.yaml", "configs/paper.yaml", "configs/release.yaml", "configs/ablation_cpu.yaml"],
)
def test_shipped_configurations_have_valid_resources(path: str) -> None:
    params = load_params(REPO / path)
    assert "resources" in params
    cfg = ResourcesConfig.from_params(params)
    assert cfg.other.gpus == 0 and cfg.train.cpus >= 1
