"""The study section: which runs exist, their paths, and clear errors for bad entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtunet.study import PAPER_ABLATIONS, RunPaths, StudyConfig, describe, parse_seed, study_runs


def test_defaults_and_reference() -> None:
    study = StudyConfig.from_dict(None)
    assert study.models == ("mtunet", "unet")
    assert study.reference == "mtunet"
    assert study.variants == ("mtunet", "unet")


def test_runs_cover_every_variant_and_seed_with_distinct_paths() -> None:
    study = StudyConfig.from_dict(
        {
            "models": ["mtunet", "unet"],
            "seeds": [3, 5],
            "ablations": {"win_size_2": {"win_size": 2}},
        }
    )
    runs = study_runs(study, "acdc", Path("/r"))
    assert [(r.variant, r.seed) for r in runs] == [
        ("mtunet", 3),
        ("mtunet", 5),
        ("unet", 3),
        ("unet", 5),
        ("win_size_2", 3),
        ("win_size_2", 5),
    ]
    assert len({r.checkpoint for r in runs}) == len({r.eval_dir for r in runs}) == 6
    run = RunPaths("acdc", "unet", 5, Path("/r"))
    assert run.checkpoint == Path("/r/models/acdc/unet/seed5/model.pt")
    assert run.live_dir == Path("/r/dvclive/acdc/unet/seed5")
    assert run.per_case == Path("/r/eval/acdc/unet/seed5/per_case.csv")


def test_ablation_spec_is_mtunet_with_the_override() -> None:
    study = StudyConfig.from_dict({"ablations": PAPER_ABLATIONS})
    model = {"img_size": 32, "width_mult": 0.125, "win_size": 4}
    spec = study.spec(model, "win_size_2")
    assert spec.name == "mtunet" and spec.config.win_size == 2
    assert study.spec(model, "global_attention").config.attention == "global"
    assert study.spec(model, "unet").name == "unet"
    assert describe("no_gaussian", study) == "no_gaussian (gaussian=False)"
    assert study.kind("no_external_attention") == "ablation"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"models": []}, r"study\.models: list at least one"),
        ({"models": ["mtunet", "mtunet"]}, r"study\.models: names repeat"),
        ({"models": ["vnet"]}, r"model\.name: expected one of"),
        ({"seeds": [1, 1]}, r"study\.seeds: seeds must be distinct"),
        ({"seeds": ["a"]}, r"study\.seeds: expected a non-empty list of integers"),
        ({"ablations": {"unet": {"win_size": 2}}}, r"study\.ablations\.unet: the name is also"),
        ({"ablations": {"x": {"win_sz": 2}}}, r"study\.ablations\.x.*win_sz"),
        ({"ablations": {"x": {"name": "unet"}}}, r"an ablation changes MT-UNet"),
        ({"models": ["unet"], "ablations": {"x": {"win_size": 2}}}, r"add mtunet to study"),
        ({"confidence": 1.5}, r"study\.confidence"),
        ({"coverage_studies": 10}, r"study\.coverage_studies: expected an integer >= 100"),
        ({"coverage_resamples": 2.5}, r"study\.coverage_resamples: expected an integer"),
        ({"model": "unet"}, r"study: unknown key"),
    ],
)
def test_bad_sections_name_the_parameter(section: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StudyConfig.from_dict(section)


def test_kind_and_seed_errors() -> None:
    study = StudyConfig.from_dict({"seeds": [1, 2]})
    with pytest.raises(ValueError, match=r"neither in study\.models"):
        study.kind("attention_unet")
    with pytest.raises(ValueError, match=r"seed 3 is not in study\.seeds"):
        parse_seed("3", study)
    with pytest.raises(ValueError, match="seed: expected an integer"):
        parse_seed("x")
    assert parse_seed("2", study) == 2


@pytest.mark.parametrize(
    "path",
    ["params.yaml", "configs/paper.yaml", "configs/release.yaml", "configs/ablation_cpu.yaml"],
)
def test_shipped_configurations_are_valid(path: str) -> None:
    """Every params file the README tells users to copy builds every run it declares."""
    from mtunet.config import load_params, train_section
    from mtunet.evaluation import EvalConfig
    from mtunet.training import TrainConfig

    params = load_params(Path(__file__).resolve().parents[1] / path)
    study = StudyConfig.from_dict(params["study"])
    assert "seed" not in params["train"], "seeds come from study.seeds"
    for dataset in params["datasets"]:  # train.epochs may be one number per dataset
        TrainConfig.from_dict(train_section(params, dataset))
    EvalConfig.from_dict(params["evaluate"])
    for variant in study.variants:
        spec = study.spec(params["model"], variant)
        assert spec.config.img_size == (params["model"]["img_size"],) * 2
