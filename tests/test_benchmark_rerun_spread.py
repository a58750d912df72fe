"""benchmarks/rerun_spread.py: the comparison of a rerun with the committed study, and the
checks that a rerun ran the machine it simulated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtunet.fileio import write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import rerun_spread as rs


def _comparison(root: Path, ds: str, mtunet: float, unet: float, verdict: str) -> None:
    write_json(
        root / "compare" / ds / "comparison.json",
        {
            "variants": {
                "mtunet": {"dsc": {"mean": mtunet}, "hd95": {"mean": 2.0}},
                "unet": {"dsc": {"mean": unet}, "hd95": {"mean": 3.0}},
            },
            "comparisons": {
                "models": {
                    "dsc": [
                        {"variant": "unet", "verdict": verdict, "diff": unet - mtunet,
                         "ci_low": -1.0, "ci_high": 1.0}
                    ]
                }
            },
        },
    )  # fmt: skip


def test_a_rerun_is_compared_mean_by_mean_and_verdict_by_verdict(tmp_path: Path) -> None:
    _comparison(tmp_path / "base", "acdc", 83.0, 84.0, "higher")
    _comparison(tmp_path / "same", "acdc", 83.5, 84.0, "higher")
    _comparison(tmp_path / "flip", "acdc", 84.2, 84.0, "none")
    base = rs.study_numbers(tmp_path / "base", ["acdc"])
    assert base["acdc"]["comparisons"]["models/dsc/unet"]["verdict"] == "higher"
    same = rs.compare(base, rs.study_numbers(tmp_path / "same", ["acdc"]))
    flip = rs.compare(base, rs.study_numbers(tmp_path / "flip", ["acdc"]))
    assert same["acdc"]["variants"]["mtunet"]["dsc"]["move"] == pytest.approx(0.5)
    assert same["acdc"]["variants"]["unet"]["dsc"]["move"] == 0.0
    assert same["acdc"]["comparisons"]["models/dsc/unet"]["same"] is True
    assert flip["acdc"]["comparisons"]["models/dsc/unet"] == {
        "committed": "higher",
        "rerun": "none",
        "same": False,
        "diff_committed": pytest.approx(1.0),
        "diff_rerun": pytest.approx(-0.2),
    }
    both = rs.summary({"a": {"results": same}, "b": {"results": flip}})
    assert both["largest_move"]["acdc"]["mtunet"]["dsc"] == pytest.approx(1.2)
    assert both["every_verdict_held"] is False
    assert rs.summary({"a": {"results": same}})["every_verdict_held"] is True


def test_a_rerun_that_did_not_run_its_machine_fails(tmp_path: Path) -> None:
    def train_json(threads: int, branch: str, start: int | None = None) -> None:
        resources = {"torch_threads": threads}
        if start is not None:
            resources["torch_threads_default"] = start
        write_json(
            tmp_path / "models" / "acdc" / "mtunet" / "seed1" / "train.json",
            {"resources": resources, "machine": {"mkl_branch": branch}},
        )

    shim = Path("/x/shim.so")
    train_json(4, "AUTO")  # a file from before train.threads: it started with what it used
    assert rs.check_runs(tmp_path, "4 threads", rs.environment("4 threads", shim)) == [
        {"run": "acdc/mtunet/seed1", "torch_threads": 4, "torch_threads_default": 4,
         "mkl_branch": "AUTO"}
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="did not run as simulated"):
        rs.check_runs(tmp_path, "1 thread", rs.environment("1 thread", shim))
    # The other vendor's MKL takes its own branch; AUTO means the shim did not take.
    with pytest.raises(SystemExit, match="did not run as simulated"):
        rs.check_runs(tmp_path, "other vendor", rs.environment("other vendor", shim))
    train_json(2, "AVX2")
    assert rs.check_runs(tmp_path, "other vendor", rs.environment("other vendor", shim))
    assert rs.mkl_branch_of(tmp_path) == "AVX2"
    # On an Intel machine (its own runs on AVX2) the shim makes MKL take AUTO.
    with pytest.raises(SystemExit, match="did not run as simulated"):
        rs.check_runs(tmp_path, "other vendor", rs.environment("other vendor", shim), None, "AVX2")
    train_json(2, "AUTO")
    assert rs.check_runs(
        tmp_path, "other vendor", rs.environment("other vendor", shim), None, "AVX2"
    )
    # A study with train.threads: 2 on a machine that started it with 4 threads.
    train_json(2, "AUTO", start=4)
    assert rs.check_runs(tmp_path, "4 threads", rs.environment("4 threads", shim))
    with pytest.raises(SystemExit, match="did not run as simulated"):
        rs.check_runs(tmp_path, "1 thread", rs.environment("1 thread", shim))
    # another seed: the runs must carry the shifted seeds.
    assert rs.check_runs(tmp_path, "another seed", {}, seeds=[1])
    with pytest.raises(SystemExit, match="did not run as simulated"):
        rs.check_runs(tmp_path, "another seed", {}, seeds=[2])


def test_another_seed_shifts_every_training_seed_in_the_clone(tmp_path: Path) -> None:
    params = {"study": {"seeds": [1234, 7]}, "train": {"epochs": 3}}
    assert rs.shifted_seeds(params) == [1235, 8]
    path = tmp_path / "params.yaml"
    path.write_text("study:\n  seeds: [1234, 7]  # a comment\ntrain:\n  epochs: 3\n")
    rs.with_seeds(path, rs.shifted_seeds(params))
    import yaml

    assert yaml.safe_load(path.read_text()) == {
        "study": {"seeds": [1235, 8]},
        "train": {"epochs": 3},
    }


def test_merge_keeps_only_reruns_of_the_same_configuration_and_results(tmp_path: Path) -> None:
    base = {"acdc": {"variants": {"mtunet": {"dsc": 83.0}}, "comparisons": {}}}
    path = tmp_path / "rerun_spread.json"
    assert rs.earlier_reruns(path, "d1", base) == {}
    write_json(path, {"study_digest": "d1", "committed": base, "reruns": {"1 thread": {"x": 1}}})
    assert rs.earlier_reruns(path, "d1", base) == {"1 thread": {"x": 1}}
    assert rs.earlier_reruns(path, "d2", base) == {}  # other parameters
    other = {"acdc": {"variants": {"mtunet": {"dsc": 83.5}}, "comparisons": {}}}
    assert rs.earlier_reruns(path, "d1", other) == {}  # other committed numbers


def test_the_thread_setter_sets_more_threads_than_omp_allows(tmp_path: Path) -> None:
    """torch caps OMP_NUM_THREADS at the cores it sees; the sitecustomize does not."""
    (tmp_path / "sitecustomize.py").write_text(rs.SITECUSTOMIZE, encoding="utf-8")
    code = "import torch; print(torch.get_num_threads())"
    want = (os.cpu_count() or 1) + 2
    env = {**os.environ, "PYTHONPATH": str(tmp_path), rs.THREADS_ENV: str(want)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert int(out.stdout) == want
