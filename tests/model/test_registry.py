"""The model registry: every network maps (B, C, H, W) to logits, trains every parameter, and
comes back from its checkpoint record; a user factory is found by import path."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from mtunet.model import MTUNetConfig
from mtunet.model.registry import BUILTIN_MODELS, ModelSpec, complexity

SMALL = {"img_size": 32, "width_mult": 0.125}


def _spec(name: str, **kw: object) -> ModelSpec:
    return ModelSpec.from_params({**SMALL, **kw}, name=name).with_data(1, 4)


@pytest.mark.parametrize("name", BUILTIN_MODELS)
def test_builtin_output_is_logits_of_the_input_size(name: str) -> None:
    torch.manual_seed(0)
    out = _spec(name).build()(torch.randn(3, 1, 32, 32))
    assert out.shape == (3, 4, 32, 32)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("name", ["unet", "attention_unet"])
def test_every_baseline_parameter_gets_a_gradient(name: str) -> None:
    # MT-UNet's own gradient test, with its deliberately unused parameters, is in
    # tests/model/test_network.py.
    torch.manual_seed(0)
    model = _spec(name).build()
    model(torch.randn(3, 1, 32, 32)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_width_mult_narrows_the_baselines() -> None:
    narrow = sum(p.numel() for p in _spec("unet").build().parameters())
    wide = sum(p.numel() for p in _spec("unet", width_mult=0.25).build().parameters())
    assert wide > 3 * narrow


def test_record_round_trip_rebuilds_the_same_network() -> None:
    for name in BUILTIN_MODELS:
        spec = _spec(name)
        torch.manual_seed(1)
        model = spec.build().eval()
        again = ModelSpec.from_record(spec.to_record())
        assert again == spec
        rebuilt = again.build().eval()
        rebuilt.load_state_dict(model.state_dict())
        x = torch.randn(2, 1, 32, 32)
        assert torch.equal(model(x), rebuilt(x))


def test_unknown_name_and_bad_kwargs_name_the_parameter() -> None:
    with pytest.raises(ValueError, match=r"model\.name.*'resnet'"):
        ModelSpec("resnet")
    with pytest.raises(ValueError, match=r"model\.kwargs"):
        ModelSpec("unet", {"depth": 3})
    with pytest.raises(ValueError, match=r"model\.img_size.*multiples of 16"):
        ModelSpec.from_params({"img_size": 40}, name="unet").build()


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user package on sys.path with a good and two bad factories."""
    pkg = tmp_path / "mynets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "small.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            def build(in_channels, num_classes, img_size, hidden=8):
                assert isinstance(img_size, tuple)
                return nn.Sequential(
                    nn.Conv2d(in_channels, hidden, 3, padding=1),
                    nn.ReLU(),
                    nn.Conv2d(hidden, num_classes, 1),
                )

            def wrong_shape(in_channels, num_classes, img_size):
                return nn.Conv2d(in_channels, num_classes + 1, 1)

            def raises(in_channels, num_classes, img_size):
                raise RuntimeError("no GPU here")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "mynets.small"
    for mod in ("mynets", "mynets.small"):
        sys.modules.pop(mod, None)


def test_user_factory_by_import_path(user_module: str) -> None:
    spec = ModelSpec.from_params({**SMALL, "kwargs": {"hidden": 5}}, name=f"{user_module}:build")
    spec = spec.with_data(1, 3)
    model = spec.build()
    assert isinstance(model, nn.Module)
    assert model[0].out_channels == 5
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    assert ModelSpec.from_record(spec.to_record()).build()[0].out_channels == 5


def test_user_factory_errors_name_model_name_and_cause(user_module: str) -> None:
    with pytest.raises(ValueError, match=r"model\.name.*must return logits of shape"):
        ModelSpec(f"{user_module}:wrong_shape").with_data(1, 3).build()
    with pytest.raises(ValueError, match=r"model\.name.*RuntimeError: no GPU here"):
        ModelSpec(f"{user_module}:raises").build()
    with pytest.raises(
        ValueError, match=r"model\.name: cannot import module 'nowhere_pkg.mod'.*No module named"
    ):
        ModelSpec("nowhere_pkg.mod:build").build()
    with pytest.raises(ValueError, match=r"has no callable 'missing'"):
        ModelSpec(f"{user_module}:missing").build()


def test_complexity_counts_parameters_and_convolution_flops() -> None:
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    c = complexity(conv, 1, (8, 8))
    assert c["params"] == 36
    # 2 FLOP per multiply-add: 8 * 8 outputs * 4 channels * 9 taps.
    assert c["gflops"] == pytest.approx(2 * 64 * 4 * 9 / 1e9)
    assert c["input"] == [1, 1, 8, 8]


def test_complexity_leaves_the_model_untouched() -> None:
    model = _spec("unet").build().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    complexity(model, 1, (32, 32))
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_mtunet_spec_matches_the_config() -> None:
    spec = ModelSpec.from_params({"img_size": 32, "width_mult": 0.125, "win_size": 2})
    assert spec.name == "mtunet"
    assert spec.config == MTUNetConfig(img_size=32, width_mult=0.125, win_size=2)
