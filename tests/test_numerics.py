"""CPU kernel selection: portable AVX2 kernels, set before a process computes anything."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
import torch

from mtunet import numerics


def test_portable_in_a_fresh_process_caps_every_library_at_avx2() -> None:
    code = (
        "import json, os, torch\n"
        "from mtunet.numerics import pin_cpu_kernels\n"
        "info = pin_cpu_kernels('portable')\n"
        "x = torch.ones(4) + 1\n"  # the first computation happens after the pin
        "env = {k: os.environ.get(k) for k in ('ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA', 'MKL_CBWR')}\n"
        "print(json.dumps({'info': info, 'env': env}))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in numerics.PORTABLE_ENV}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if numerics.is_x86():
        assert got["info"] == {"mode": "portable", "aten": "AVX2"}
        assert got["env"] == numerics.PORTABLE_ENV
    else:  # nothing to cap elsewhere: native kernels, environment untouched
        assert got["info"]["mode"] == "native"
        assert got["env"] == dict.fromkeys(numerics.PORTABLE_ENV)


def test_too_late_or_not_x86_falls_back_to_native_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for key in numerics.PORTABLE_ENV:
        monkeypatch.setenv(key, "unset")  # recorded, so the test's own pins are undone
        monkeypatch.delenv(key)
    monkeypatch.setattr(numerics, "is_x86", lambda: True)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    with caplog.at_level(logging.WARNING, logger="mtunet.numerics"):
        assert numerics.pin_cpu_kernels("portable")["mode"] == "native"
    assert "already computed with AVX512 kernels" in caplog.text
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert numerics.pin_cpu_kernels("portable") == {"mode": "portable", "aten": "AVX2"}
    caplog.clear()
    monkeypatch.setattr(numerics, "is_x86", lambda: False)
    with caplog.at_level(logging.WARNING, logger="mtunet.numerics"):
        assert numerics.pin_cpu_kernels("portable")["mode"] == "native"
    assert "applies to x86-64" in caplog.text
    assert numerics.pin_cpu_kernels("native")["mode"] == "native"


def test_unknown_mode_and_kernel_record() -> None:
    with pytest.raises(ValueError, match=r"cpu_kernels: must be one of \['native', 'portable'"):
        numerics.pin_cpu_kernels("fast")  # type: ignore[arg-type]
    rec = numerics.kernel_record()
    assert rec["cores"] >= 1 and rec["torch"] == str(torch.__version__)
    assert rec["threads"] == torch.get_num_threads()
    assert rec["aten_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(rec["cpu"], str) and rec["cpu"]


@pytest.mark.skipif(not numerics.is_x86(), reason="MKL's branches exist on x86-64 only")
def test_each_kernel_set_reaches_mkl_as_its_branch() -> None:
    """``compatible`` is MKL's vendor-neutral branch everywhere; ``portable`` asks for AVX2,
    which MKL honours on Intel CPUs and replaces by its automatic branch on the others."""
    code = (
        "import json, sys, torch\n"
        "from mtunet.numerics import kernel_record, pin_cpu_kernels\n"
        "info = pin_cpu_kernels(sys.argv[1])\n"
        "torch.ones(3, 3) @ torch.ones(3, 3)\n"
        "print(json.dumps({'info': info, 'record': kernel_record()}))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in numerics.COMPATIBLE_ENV}
    got = {}
    for mode in numerics.CPU_KERNELS:
        out = subprocess.run(
            [sys.executable, "-c", code, mode],
            capture_output=True,
            text=True,
            check=True,
            env=clean,
        )
        got[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    if got["native"]["record"]["mkl_branch"] is None:
        pytest.skip("this torch build has no MKL to ask")
    assert got["native"]["record"]["mkl_branch"] == "OFF"
    assert got["compatible"]["record"]["mkl_branch"] == "COMPATIBLE"
    assert got["compatible"]["info"] == {"mode": "compatible", "aten": "AVX2"}
    intel = got["portable"]["record"]["vendor"] == "GenuineIntel"
    assert got["portable"]["record"]["mkl_branch"] == ("AVX2" if intel else "AUTO")


_THREADS_CODE = (
    "import hashlib, json, sys, torch\n"
    "torch.set_num_threads(int(sys.argv[1]))\n"  # what the machine starts the process with
    "from mtunet.numerics import pin_threads\n"
    "info = pin_threads(2)\n"
    "g = torch.Generator().manual_seed(0)\n"
    "x = torch.randn(8, 16, 48, 48, generator=g)\n"
    "w = torch.randn(32, 16, 3, 3, generator=g, requires_grad=True)\n"
    "y = torch.nn.functional.conv2d(x, w, padding=1)\n"
    "(y.square().mean() + (y.flatten(1) @ y.flatten(1).T).sum()).backward()\n"
    "digest = hashlib.sha256(w.grad.numpy().tobytes()).hexdigest()\n"
    "print(json.dumps({'info': info, 'digest': digest}))\n"
)


def test_fixed_threads_compute_the_same_bits_whatever_the_process_started_with() -> None:
    """A machine with 1 core or 4 starts torch with 1 or 4 threads; pinned to 2, both
    record what they started with and compute one gradient bit for bit."""
    got = []
    for start in (1, 4):
        out = subprocess.run(
            [sys.executable, "-c", _THREADS_CODE, str(start)],
            capture_output=True,
            text=True,
            check=True,
        )
        got.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert [g["info"] for g in got] == [
        {"threads": 2, "threads_default": 1},
        {"threads": 2, "threads_default": 4},
    ]
    assert got[0]["digest"] == got[1]["digest"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_threads_must_be_a_positive_integer_or_null(bad: object) -> None:
    assert numerics.valid_threads(None) and numerics.valid_threads(3)
    assert not numerics.valid_threads(bad)
    with pytest.raises(ValueError, match="threads: must be an integer >= 1"):
        numerics.pin_threads(bad)  # type: ignore[arg-type]


def test_null_threads_keep_the_process_count() -> None:
    before = torch.get_num_threads()
    assert numerics.pin_threads(None)["threads"] == before == torch.get_num_threads()


_DENORMALS_CODE = (
    "import json, sys, torch\n"
    "from mtunet.numerics import denormal_mode, kernel_record, pin_denormals, pin_threads\n"
    "pin_threads(2)\n"
    "if sys.argv[2] == 'late':\n"
    "    torch.ones(1 << 20).mul(2).sum()\n"  # starts the worker threads before the pin
    "mode = pin_denormals(sys.argv[1] == 'flush')\n"
    "d = torch.full((256, 256), 1 << 21, dtype=torch.int32).view(torch.float32)\n"
    "products = {\n"  # denormal in, denormal out: zero where flushed
    "    'matmul': d @ torch.eye(256),\n"
    "    'conv': torch.nn.functional.conv2d(d[None, None], torch.ones(1, 1, 1, 1)),\n"
    "}\n"
    "zero = {k: float((v.view(torch.int32) == 0).float().mean()) for k, v in products.items()}\n"
    "print(json.dumps({'mode': mode, 'record': kernel_record()['denormals'], 'zero': zero}))\n"
)


def _denormals_run(setting: str, when: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _DENORMALS_CODE, setting, when],
        capture_output=True,
        text=True,
        check=True,
    )
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "stderr": out.stderr}


def test_flushing_before_the_first_computation_reaches_every_thread_and_library() -> None:
    flushed = _denormals_run("flush", "early")
    assert flushed["mode"] == flushed["record"] == "flushed"
    assert flushed["zero"] == {"matmul": 1.0, "conv": 1.0}  # MKL's and oneDNN's threads too
    kept = _denormals_run("keep", "early")
    assert kept["mode"] == kept["record"] == "kept"
    assert kept["zero"] == {"matmul": 0.0, "conv": 0.0}


def test_flushing_after_the_workers_started_is_reported_as_mixed() -> None:
    late = _denormals_run("flush", "late")
    assert late["mode"] == late["record"] == "mixed"
    assert "flush_denormals: True was requested after" in late["stderr"]


@pytest.mark.parametrize("bad", [1, "true", None])
def test_flush_denormals_must_be_a_bool(bad: object) -> None:
    from mtunet.evaluation import EvalConfig
    from mtunet.training.config import TrainConfig

    with pytest.raises(ValueError, match="flush_denormals: must be true or false"):
        numerics.pin_denormals(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flush_denormals"):
        TrainConfig(flush_denormals=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flush_denormals"):
        EvalConfig(flush_denormals=bad)  # type: ignore[arg-type]
