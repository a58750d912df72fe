"""The `mtunet` command: the stages one by one, with clear errors for bad params."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from mtunet import stages
from mtunet.cli import main

REPO = Path(__file__).resolve().parents[1]


def _params(tmp_path: Path, **edits: dict) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    small = {"size": 32, "min_slices": 4, "max_slices": 5}
    params["datasets"]["synapse"]["phantoms"].update(n_train=2, n_test=1, **small)
    for section, values in edits.items():
        params[section].update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_data_stages_through_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path)
    assert main(["--params", str(params), "phantoms", "synapse"]) == 0
    assert (tmp_path / "data/raw/synapse/RawData/Training/img").is_dir()
    assert main(["--params", str(params), "preprocess", "synapse"]) == 0
    paths = stages.StudyPaths("synapse")
    from mtunet.data import load_manifest

    manifest = load_manifest(paths.manifest)
    assert len(manifest.splits["train"]["cases"]) == 2
    assert len(manifest.paths("test", "volumes")) == 1


def test_bad_params_exit_2_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, model={"win_size": 0})
    assert main(["--params", str(params), "train", "synapse"]) == 2
    assert "win_size: must be >= 1" in capsys.readouterr().err
    params = _params(tmp_path, train={"epochs": "ten"})
    assert main(["--params", str(params), "train", "synapse"]) == 2
    assert "train.epochs" in capsys.readouterr().err
    assert main(["--params", str(tmp_path / "none.yaml"), "report"]) == 2
    assert "none.yaml" in capsys.readouterr().err


def test_predict_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import nibabel as nib
    import numpy as np

    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 2), np.int16), np.eye(4)), scan)
    out = tmp_path / "seg.nii.gz"
    args = ["predict", "--input", str(scan), "--output", str(out), "--checkpoint"]
    assert main([*args, str(tmp_path / "m.pt")]) == 2
    assert "m.pt" in capsys.readouterr().err
    assert main([*args[:2], str(tmp_path / "x.nii.gz"), *args[3:], str(scan)]) == 2
    assert "x.nii.gz" in capsys.readouterr().err
    assert not out.exists()


def test_study_paths_and_raw_dir() -> None:
    p = stages.StudyPaths("acdc", Path("/s"))
    assert p.manifest == Path("/s/data/processed/acdc/dataset.json")
    assert p.compare_dir == Path("/s/compare/acdc")
    assert p.metrics == Path("/s/metrics/acdc.json")
    params = {"datasets": {"acdc": {"raw_dir": "/real/acdc"}}}
    assert stages.raw_dir(params, "acdc") == Path("/real/acdc")
    with pytest.raises(ValueError, match=r"datasets\.synapse"):
        stages.raw_dir(params, "synapse")
    with pytest.raises(ValueError, match="dataset"):
        stages.raw_dir(params, "btcv")


def test_console_script_is_declared() -> None:
    """``pip install`` puts ``mtunet`` on PATH: the entry point names cli.main."""
    scripts = entry_points(group="console_scripts", name="mtunet")
    assert [s.value for s in scripts] == ["mtunet.cli:main"]


def test_python_dash_m_runs_the_command(tmp_path: Path) -> None:
    """``python -m mtunet`` works with any interpreter, activated or not (no PATH lookup)."""
    run = [sys.executable, "-m", "mtunet"]
    proc = subprocess.run([*run, "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "predict" in proc.stdout and "report" in proc.stdout
    proc = subprocess.run(
        [*run, "--params", str(tmp_path / "none.yaml"), "report"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "none.yaml" in proc.stderr
