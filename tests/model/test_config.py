"""MTUNetConfig: defaults, width multiplier and ValueErrors naming the field."""

from __future__ import annotations

import pytest

from mtunet.model import MTUNetConfig


def test_defaults_are_the_authors() -> None:
    c = MTUNetConfig()
    assert c.img_size == (224, 224)
    assert (c.cnn_channels, c.encoder_dims, c.bottleneck_dim) == ((64, 128, 256), (256, 512), 1024)
    assert (c.decoder_dims, c.num_heads, c.win_size) == ((1024, 512), 8, 4)
    assert (c.ea_memory, c.ea_coef, c.padding) == (64, 4, "official")
    assert c.resolved() is c


def test_width_mult_resolves_consistently() -> None:
    r = MTUNetConfig(width_mult=0.125).resolved()
    assert r.cnn_channels == (8, 16, 32)
    assert r.encoder_dims == (32, 64) and r.bottleneck_dim == 128 and r.decoder_dims == (128, 64)
    assert r.width_mult == 1.0
    r = MTUNetConfig(width_mult=0.25).resolved()
    assert r.encoder_dims == (64, 128) and r.cnn_channels == (16, 32, 64)


def test_round_trip_dict() -> None:
    c = MTUNetConfig(img_size=(256, 320), gaussian=False, width_mult=0.5)
    assert MTUNetConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"win_size": 0}, "win_size"),
        ({"num_heads": 7}, "num_heads"),  # 256 not divisible by 7
        ({"num_heads": 0}, "num_heads"),
        ({"img_size": 100}, "img_size"),
        ({"img_size": (224, 0)}, "img_size"),
        ({"num_classes": 1}, "num_classes"),
        ({"in_channels": 0}, "in_channels"),
        ({"width_mult": 0.0}, "width_mult"),
        ({"attention": "axial"}, "attention"),
        ({"padding": "zeros"}, "padding"),
        ({"encoder_dims": (256, 256)}, "encoder_dims"),
        ({"bottleneck_dim": 512}, "bottleneck_dim"),
        ({"decoder_dims": (1024, 256)}, "decoder_dims"),
        ({"ea_memory": 0}, "ea_memory"),
        ({"ea_coef": 0}, "ea_coef"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
        ({"cnn_channels": (64, 0, 256)}, "cnn_channels"),
    ],
)
def test_invalid_configs_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        MTUNetConfig(**kwargs)


def test_from_dict_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"model\.gaussian"):
        MTUNetConfig.from_dict({"gaussian": "yes"})
    with pytest.raises(ValueError, match="unknown key"):
        MTUNetConfig.from_dict({"heads": 8})
