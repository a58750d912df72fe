"""MT-UNet: CNN stem -> transformer encoder -> bottleneck -> transformer decoder ->
CNN decoder -> segmentation head, exactly as the authors' implementation computes it.

Submodule names reproduce the authors' state-dict keys (``stem.model.res1``,
``encoder.0.block.2``, ``decoder_stem.block.trans1``, ``SegmentationHead``, ...), so their
checkpoints load with :func:`mtunet.model.official.load_official_state_dict`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtunet.model.attention import CSAttention, GlobalSelfAttention, MEAttention
from mtunet.model.config import MTUNetConfig
from mtunet.model.layers import ConvBNReLU, DoubleConv, crop_to, pad_to_even, to_map, to_tokens


class MTM(nn.Module):
    """Mixed transformer module on tokens: ``x + LGG_SA(LN(x))`` then ``x + EA(LN(x))``.

    There is no MLP block. With ``external_attention=False`` the EA sub-layer (and its
    LayerNorm) does not exist; with ``attention="global"`` LGG-SA is replaced by plain
    multi-head self-attention over all tokens (kept under the name ``CSAttention``).
    """

    def __init__(self, dim: int, cfg: MTUNetConfig) -> None:
        super().__init__()
        # Registration order reproduces the authors' state-dict key order.
        self.SlayerNorm = nn.LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.ElayerNorm: nn.LayerNorm | None = None
        if cfg.external_attention:
            self.ElayerNorm = nn.LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.CSAttention: nn.Module
        if cfg.attention == "global":
            self.CSAttention = GlobalSelfAttention(dim, cfg.num_heads)
        else:
            self.CSAttention = CSAttention(
                dim, cfg.num_heads, cfg.win_size, gaussian=cfg.gaussian, padding=cfg.padding
            )
        self.EAttention: MEAttention | None = None
        if cfg.external_attention:
            self.EAttention = MEAttention(dim, cfg.num_heads, cfg.ea_memory, cfg.ea_coef)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """(B, h*w, C) tokens of an h x w grid -> (B, h*w, C) tokens."""
        x = x + self.CSAttention(self.SlayerNorm(x), hw)
        if self.EAttention is not None and self.ElayerNorm is not None:
            x = x + self.EAttention(self.ElayerNorm(x))
        return x


class _CNNStem(nn.Module):
    """The three residual CNN stages (key prefix ``stem.model``)."""

    def __init__(self, cin: int, widths: tuple[int, int, int]) -> None:
        super().__init__()
        self.res1 = DoubleConv(cin, widths[0])
        self.res2 = DoubleConv(widths[0], widths[1])
        self.res3 = DoubleConv(widths[1], widths[2])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, cin, H, W) -> (B, c2, H/8, W/8) and features [f0 (H), f1 (H/2), f2 (H/4)]."""
        feats = []
        for res in (self.res1, self.res2, self.res3):
            x = res(x)
            feats.append(x)
            x = F.max_pool2d(x, 2)
        return x, feats


class Stem(nn.Module):
    """CNN stem, 1x1 projection to tokens and a learned position embedding.

    The embedding (1, (img_h/8)*(img_w/8), C) is zero-initialised and sized from
    ``cfg.img_size``; for another token grid it is resized bilinearly
    (``align_corners=False``), so a 224 checkpoint runs on any multiple-of-8 input.
    """

    def __init__(self, cfg: MTUNetConfig) -> None:
        super().__init__()
        self.repeat_gray = cfg.in_channels == 1  # the authors repeat 1 channel to 3
        cin = 3 if self.repeat_gray else cfg.in_channels
        dim = cfg.encoder_dims[0]
        self.grid = (cfg.img_size[0] // 8, cfg.img_size[1] // 8)
        self.position_embedding = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], dim))
        self.model = _CNNStem(cin, cfg.cnn_channels)
        self.trans_dim = ConvBNReLU(cfg.cnn_channels[2], dim, 1, padding=0)

    def position(self, hw: tuple[int, int]) -> torch.Tensor:
        """Position embedding for an h x w token grid, (1, h*w, C)."""
        if tuple(hw) == self.grid:
            return self.position_embedding
        pe = to_map(self.position_embedding, self.grid)
        pe = F.interpolate(pe, size=hw, mode="bilinear", align_corners=False)
        return to_tokens(pe)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int], list[torch.Tensor]]:
        """(B, in_channels, H, W) -> tokens (B, H/8*W/8, C), grid (H/8, W/8), CNN features."""
        if self.repeat_gray:
            x = x.repeat(1, 3, 1, 1)
        x, feats = self.model(x)
        x = self.trans_dim(x)
        hw = (x.shape[-2], x.shape[-1])
        return to_tokens(x) + self.position(hw).to(x.dtype), hw, feats


class EncoderBlock(nn.Module):
    """MTM(dim), MTM(dim), keep the map as a skip, then ConvBNReLU(dim, 2 dim, k=2, s=2)."""

    def __init__(self, dim: int, cfg: MTUNetConfig) -> None:
        super().__init__()
        self.block = nn.ModuleList(
            [MTM(dim, cfg), MTM(dim, cfg), ConvBNReLU(dim, 2 * dim, 2, stride=2, padding=0)]
        )

    def forward(
        self, x: torch.Tensor, hw: tuple[int, int]
    ) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor]:
        """Tokens (B, h*w, C) -> tokens (B, ceil(h/2)*ceil(w/2), 2C), their grid, skip map."""
        x = self.block[0](x, hw)
        x = self.block[1](x, hw)
        skip = to_map(x, hw)
        y = self.block[2](pad_to_even(skip))
        return to_tokens(y), (y.shape[-2], y.shape[-1]), skip


class DecoderBlock(nn.Module):
    """ConvTranspose2d(dim, dim/2, 2, 2), concat ``[upsampled, skip]``, optional
    Conv1x1(2*(dim/2), dim/2) (not in the last block), then two MTMs.

    Keys: ``block.0`` (transposed conv), ``block.1`` (1x1 conv, first block only), then the
    MTMs. The output dim is dim/2 with the 1x1 conv and ``dim/2 + skip channels`` without.
    """

    def __init__(self, dim: int, skip_dim: int, last: bool, cfg: MTUNetConfig) -> None:
        super().__init__()
        up = dim // 2
        layers: list[nn.Module] = [nn.ConvTranspose2d(dim, up, 2, stride=2)]
        if last:
            out_dim = up + skip_dim
        else:
            layers.append(nn.Conv2d(up + skip_dim, up, 1))
            out_dim = up
        layers += [MTM(out_dim, cfg), MTM(out_dim, cfg)]
        self.has_squeeze = not last
        self.out_dim = out_dim
        self.block = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, hw: tuple[int, int], skip: torch.Tensor) -> torch.Tensor:
        """Tokens (B, h*w, dim) + skip map (B, Cs, H, W) -> map (B, out_dim, H, W)."""
        shw = (skip.shape[-2], skip.shape[-1])
        y = crop_to(self.block[0](to_map(x, hw)), shw)  # undo pad_to_even of odd grids
        y = torch.cat([y, skip], dim=1)
        mtms = self.block[1:]
        if self.has_squeeze:
            y = self.block[1](y)
            mtms = self.block[2:]
        t = to_tokens(y)
        for mtm in mtms:
            t = mtm(t, shw)
        return to_map(t, shw)


class CNNDecoder(nn.Module):
    """Three ConvTranspose2d(k=2, s=2) + concat ``[feature, upsampled]`` + DoubleConv steps."""

    def __init__(self, cin: int, widths: tuple[int, int, int]) -> None:
        super().__init__()
        c0, c1, c2 = widths
        self.block = nn.ModuleDict(
            {
                "trans1": nn.ConvTranspose2d(cin, c2, 2, stride=2),
                "res1": DoubleConv(2 * c2, c2),
                "trans2": nn.ConvTranspose2d(c2, c1, 2, stride=2),
                "res2": DoubleConv(2 * c1, c1),
                "trans3": nn.ConvTranspose2d(c1, c0, 2, stride=2),
                "res3": DoubleConv(2 * c0, c0),
            }
        )

    def forward(self, x: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        """Map (B, cin, H/8, W/8) + [f0, f1, f2] -> map (B, c0, H, W)."""
        for i, feat in zip((1, 2, 3), reversed(feats), strict=True):
            up = self.block[f"trans{i}"](x)
            # Feature first: the opposite order of the transformer decoder (authors' code).
            x = self.block[f"res{i}"](torch.cat([feat, up], dim=1))
        return x


class MTUNet(nn.Module):
    """Mixed Transformer U-Net (Wang et al., ICASSP 2022).

    Args:
        cfg: Network configuration; ``cfg.resolved()`` (width multiplier applied) is built.

    Attributes:
        config: The config as given (``width_mult`` not yet applied).
    """

    def __init__(self, cfg: MTUNetConfig | None = None) -> None:
        super().__init__()
        cfg = MTUNetConfig() if cfg is None else cfg
        if not isinstance(cfg, MTUNetConfig):
            raise ValueError(f"cfg: expected an MTUNetConfig, got {type(cfg).__name__}")
        self.config = cfg
        r = cfg.resolved()
        e0, e1 = r.encoder_dims
        self.stem = Stem(r)
        self.encoder = nn.ModuleList([EncoderBlock(e0, r), EncoderBlock(e1, r)])
        self.bottleneck = nn.ModuleList([MTM(r.bottleneck_dim, r), MTM(r.bottleneck_dim, r)])
        self.decoder = nn.ModuleList(
            [
                DecoderBlock(r.decoder_dims[0], e1, last=False, cfg=r),
                DecoderBlock(r.decoder_dims[1], e0, last=True, cfg=r),
            ]
        )
        self.decoder_stem = CNNDecoder(self.decoder[1].out_dim, r.cnn_channels)
        self.SegmentationHead = nn.Conv2d(r.cnn_channels[0], r.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment a batch of images.

        Args:
            x: (B, in_channels, H, W) float images; H and W positive multiples of 8.

        Returns:
            (B, num_classes, H, W) logits (not probabilities), on x's device and dtype.

        Raises:
            ValueError: Wrong rank, channel count, or a side that is not a multiple of 8.
        """
        self._check_input(x)
        tokens, hw, feats = self.stem(x)
        skips = []
        for block in self.encoder:
            tokens, hw, skip = block(tokens, hw)
            skips.append(skip)
        for mtm in self.bottleneck:
            tokens = mtm(tokens, hw)
        y = self.decoder[0](tokens, hw, skips[1])
        y = self.decoder[1](to_tokens(y), (y.shape[-2], y.shape[-1]), skips[0])
        y = self.decoder_stem(y, feats)
        return self.SegmentationHead(y)

    def _check_input(self, x: torch.Tensor) -> None:
        cin = self.config.in_channels
        if x.dim() != 4 or x.shape[1] != cin:
            raise ValueError(
                f"x: expected shape (B, {cin}, H, W) (in_channels={cin}), got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h < 8 or w < 8 or h % 8 or w % 8:
            raise ValueError(f"x: height and width must be positive multiples of 8, got {h}x{w}")
