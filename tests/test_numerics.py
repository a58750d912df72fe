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
