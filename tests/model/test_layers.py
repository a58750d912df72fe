"""Convolutional blocks and token/map helpers."""

from __future__ import annotations

import pytest
import torch

from mtunet.model.layers import ConvBNReLU, DoubleConv, crop_to, pad_to_even, to_map, to_tokens


def test_double_conv_keys_and_residual_form() -> None:
    m = DoubleConv(3, 8).eval()
    keys = set(m.state_dict())
    assert {"conv.0.conv.weight", "conv.1.bn.running_var", "conv1.bias", "bn.weight"} <= keys
    assert "conv.0.conv.bias" not in keys  # convs before BN have no bias
    x = torch.randn(2, 3, 10, 12)
    with torch.no_grad():
        t = m.conv(x)
        expected = torch.relu(t + m.bn(m.conv1(t)))
        torch.testing.assert_close(m(x), expected)
        assert (m.conv[1](m.conv[0](x)) < 0).any()  # second ConvBN has no ReLU


def test_conv_bn_relu_downsample() -> None:
    m = ConvBNReLU(4, 8, 2, stride=2, padding=0)
    y = m(torch.randn(2, 4, 6, 8))
    assert y.shape == (2, 8, 3, 4) and (y >= 0).all()
    assert ConvBNReLU(4, 4, 1, padding=0, activation=False)(torch.randn(2, 4, 3, 3)).min() < 0


def test_tokens_round_trip_row_major() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    t = to_tokens(x)
    assert t.shape == (2, 20, 3)
    torch.testing.assert_close(t[:, 6], x[:, :, 1, 1])  # token 6 = row 1, column 1
    torch.testing.assert_close(to_map(t, (4, 5)), x)
    with pytest.raises(ValueError, match="4x4"):
        to_map(t, (4, 4))


def test_pad_to_even_and_crop() -> None:
    x = torch.ones(1, 1, 3, 4)
    y = pad_to_even(x)
    assert y.shape == (1, 1, 4, 4) and y[..., 3, :].abs().sum() == 0
    assert pad_to_even(torch.ones(1, 1, 2, 4)).shape == (1, 1, 2, 4)
    torch.testing.assert_close(crop_to(y, (3, 4)), x)
