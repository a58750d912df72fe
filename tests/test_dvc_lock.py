"""The committed dvc.lock records the study's stages and nothing else, and DVC reads it with
ruamel.yaml's C parser (benchmarks/dvc_overhead.py: DVC parses it several times per stage)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_the_lock_holds_exactly_the_stages_of_dvc_yaml() -> None:
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        defined = {stage.addressing for stage in repo.index.stages}
    locked = set(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"])
    # DVC keeps a stage's entry after the stage is gone from dvc.yaml, and parses it at every
    # stage of every `dvc repro`; a stage without an entry would not be reproduced as committed.
    assert locked - defined == set(), "dvc.lock entries of stages dvc.yaml no longer defines"
    assert defined - locked == set(), "stages of dvc.yaml the committed dvc.lock lacks"


def test_dvc_reads_yaml_with_the_c_parser() -> None:
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    assert CParser is not None, "ruamel.yaml.clib is not installed (pyproject.toml requires it)"
    assert YAML(typ="safe").Parser is CParser  # what dvc.utils.serialize's loads construct
