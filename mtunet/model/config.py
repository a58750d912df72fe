"""The network's configuration: the authors' defaults plus documented ablation switches."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from mtunet.config import check, from_dict, to_dict


@dataclass(frozen=True)
class MTUNetConfig:
    """Hyper-parameters of MT-UNet. Defaults are the authors' (Synapse, 9 classes, 224 x 224).

    Attributes:
        in_channels: Image channels. A 1-channel input is repeated to 3 channels in the stem,
            as the authors' code does; other counts go to the first conv unchanged.
        num_classes: Output classes including background (9 Synapse, 4 ACDC).
        img_size: (height, width) the position embedding is sized for (a bare int means
            square). Other input sizes (multiples of 8) interpolate the embedding.
        cnn_channels: Widths of the three residual CNN stages.
        encoder_dims: Token dims of the two transformer encoder blocks; each block ends by
            doubling the dim, so ``encoder_dims[1] == 2 * encoder_dims[0]``.
        bottleneck_dim: Token dim of the bottleneck (``2 * encoder_dims[1]``).
        decoder_dims: Input dims of the two transformer decoder blocks
            (``(bottleneck_dim, encoder_dims[1])``).
        num_heads: Heads of the local window attention and of external attention.
        win_size: Local window side w; the global branch is upsampled by w.
        ea_memory: External-attention memory slots (64).
        ea_coef: External-attention expansion coefficient (4).
        gaussian: Ablation: False drops the Gaussian position weighting of axial attention.
        external_attention: Ablation: False removes the EA sub-layer of every MTM.
        attention: ``"local_global"`` (LGG-SA, the paper) or ``"global"`` (plain global
            multi-head self-attention over all tokens, the ablation baseline).
        width_mult: Multiplies every channel width and token dim (rounded to a multiple of
            ``num_heads``); 1.0 is the paper's network, 0.25 a narrow CPU study network.
        padding: ``"official"`` reproduces the authors' window-padding quirk (needed for
            their checkpoints); ``"corrected"`` replicate-pads right and bottom strips too.
        layer_norm_eps: LayerNorm epsilon (1e-6 in the authors' code).
    """

    in_channels: int = 1
    num_classes: int = 9
    img_size: int | tuple[int, int] = 224
    cnn_channels: tuple[int, int, int] = (64, 128, 256)
    encoder_dims: tuple[int, int] = (256, 512)
    bottleneck_dim: int = 1024
    decoder_dims: tuple[int, int] = (1024, 512)
    num_heads: int = 8
    win_size: int = 4
    ea_memory: int = 64
    ea_coef: int = 4
    gaussian: bool = True
    external_attention: bool = True
    attention: Literal["local_global", "global"] = "local_global"
    width_mult: float = 1.0
    padding: Literal["official", "corrected"] = "official"
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        size = self.img_size
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        check(
            isinstance(size, tuple) and len(size) == 2 and all(isinstance(s, int) for s in size),
            "img_size",
            f"expected an int or (height, width), got {self.img_size!r}",
        )
        object.__setattr__(self, "img_size", tuple(size))
        check(
            all(s >= 8 and s % 8 == 0 for s in self.img_size),
            "img_size",
            f"height and width must be positive multiples of 8, got {self.img_size}",
        )
        check(self.in_channels >= 1, "in_channels", f"must be >= 1, got {self.in_channels}")
        check(self.num_classes >= 2, "num_classes", f"must be >= 2, got {self.num_classes}")
        check(
            len(self.cnn_channels) == 3 and all(c >= 1 for c in self.cnn_channels),
            "cnn_channels",
            f"expected three positive widths, got {self.cnn_channels}",
        )
        check(self.num_heads >= 1, "num_heads", f"must be >= 1, got {self.num_heads}")
        check(self.win_size >= 1, "win_size", f"must be >= 1, got {self.win_size}")
        check(self.ea_memory >= 1, "ea_memory", f"must be >= 1, got {self.ea_memory}")
        check(self.ea_coef >= 1, "ea_coef", f"must be >= 1, got {self.ea_coef}")
        check(self.width_mult > 0, "width_mult", f"must be > 0, got {self.width_mult}")
        check(self.layer_norm_eps > 0, "layer_norm_eps", f"must be > 0, got {self.layer_norm_eps}")
        check(
            self.attention in ("local_global", "global"),
            "attention",
            f"must be 'local_global' or 'global', got {self.attention!r}",
        )
        check(
            self.padding in ("official", "corrected"),
            "padding",
            f"must be 'official' or 'corrected', got {self.padding!r}",
        )
        e0, e1 = self.encoder_dims
        check(
            e1 == 2 * e0,
            "encoder_dims",
            f"the second dim must be twice the first (each block doubles), got {self.encoder_dims}",
        )
        check(
            self.bottleneck_dim == 2 * e1,
            "bottleneck_dim",
            f"must be 2 * encoder_dims[1] = {2 * e1}, got {self.bottleneck_dim}",
        )
        check(
            self.decoder_dims == (self.bottleneck_dim, e1),
            "decoder_dims",
            f"must be (bottleneck_dim, encoder_dims[1]) = {(self.bottleneck_dim, e1)}, "
            f"got {self.decoder_dims}",
        )
        check(e0 >= 1, "encoder_dims", f"dims must be positive, got {self.encoder_dims}")
        r = self.resolved()
        for d in (*r.encoder_dims, r.bottleneck_dim):
            check(
                d % self.num_heads == 0,
                "num_heads",
                f"token dim {d} (after width_mult={self.width_mult}) is not divisible by "
                f"num_heads={self.num_heads}",
            )

    def _scale(self, c: int, multiple: int) -> int:
        return max(multiple, round(c * self.width_mult / multiple) * multiple)

    def resolved(self) -> MTUNetConfig:
        """This config with ``width_mult`` applied to every width (and set to 1.0).

        CNN widths round to a multiple of 8; the first token dim rounds to a multiple of
        ``num_heads`` and the others stay 2x and 4x of it, as in the full network.
        """
        if self.width_mult == 1.0:
            return self
        # Token dims are tied by doubling: scale the first, derive the rest exactly.
        e0 = self._scale(self.encoder_dims[0], self.num_heads)
        return dataclasses.replace(
            self,
            width_mult=1.0,
            cnn_channels=tuple(self._scale(c, 8) for c in self.cnn_channels),
            encoder_dims=(e0, 2 * e0),
            bottleneck_dim=4 * e0,
            decoder_dims=(4 * e0, 2 * e0),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "model") -> MTUNetConfig:
        """Build from a ``params.yaml`` section; unknown keys raise ``ValueError``."""
        return from_dict(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples as lists); ``from_dict`` inverts it."""
        return to_dict(self)
