"""Convolutional building blocks of MT-UNet and token/map reshaping helpers.

Module and attribute names follow the authors' code so that their state-dict keys
(``conv.0.conv.weight``, ``conv1.bias``, ``bn.running_var``, ...) load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> optional ReLU. Keys: ``conv.*``, ``bn.*``.

    Args:
        cin: Input channels.
        cout: Output channels.
        kernel_size: Square kernel side.
        stride: Convolution stride.
        padding: Zero padding on every side.
        activation: Apply ReLU after the normalisation.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 1,
        activation: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, cin, H, W) -> (B, cout, H', W')."""
        x = self.bn(self.conv(x))
        return F.relu(x) if self.activation else x


class DoubleConv(nn.Module):
    """Residual double convolution of the CNN stem and CNN decoder.

    ``t = ConvBN(ConvBNReLU(x))``; ``y = ReLU(t + BN(Conv1x1(t)))`` (the 1x1 conv has a bias).

    Args:
        cin: Input channels.
        cout: Output channels.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            ConvBNReLU(cin, cout, 3),
            ConvBNReLU(cout, cout, 3, activation=False),
        )
        self.conv1 = nn.Conv2d(cout, cout, 1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, cin, H, W) -> (B, cout, H, W)."""
        t = self.conv(x)
        return F.relu(t + self.bn(self.conv1(t)))


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) map -> (B, h*w, C) tokens in row-major order."""
    return x.flatten(2).transpose(1, 2)


def to_map(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(B, h*w, C) row-major tokens -> (B, C, h, w) map."""
    b, n, c = x.shape
    h, w = hw
    if n != h * w:
        raise ValueError(f"tokens: {n} tokens cannot form a {h}x{w} map")
    return x.transpose(1, 2).reshape(b, c, h, w)


def pad_to_even(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad a (B, C, h, w) map at the bottom/right so that h and w are even.

    At the authors' 224 input every map a stride-2 layer sees is already even, so this is
    a no-op there; it lets any multiple-of-8 input (e.g. 72 -> a 9x9 token grid) go through
    the stride-2 downsampling without silently dropping the last row or column.
    """
    h, w = x.shape[-2:]
    if h % 2 == 0 and w % 2 == 0:
        return x
    return F.pad(x, (0, w % 2, 0, h % 2))


def crop_to(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Crop a (B, C, H, W) map to its top-left (B, C, h, w) block (h <= H, w <= W)."""
    return x[..., : hw[0], : hw[1]]
