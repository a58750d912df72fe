"""Which network a run trains: MT-UNet, the paper's two CNN baselines, or the user's own.

``model.name`` in ``params.yaml`` (or an entry of ``study.models``) is one of:

- ``mtunet``: this package's MT-UNet, configured by the rest of the ``model`` section;
- ``unet``: the classic U-Net (Ronneberger et al.: two 3 x 3 conv-BN-ReLU per level, four
  poolings, 64 -> 1024 channels), MONAI's ``BasicUNet``;
- ``attention_unet``: Attention U-Net (Oktay et al.), MONAI's ``AttentionUnet`` with the same
  five widths and four stride-2 levels;
- ``"package.module:factory"``: any network of the user's. ``factory(in_channels,
  num_classes, img_size, **model.kwargs)`` (``img_size`` a (height, width) tuple) returns an
  ``nn.Module`` mapping (B, in_channels, H, W) to logits (B, num_classes, H, W).

``model.width_mult`` narrows the baselines as it narrows MT-UNet (widths rounded to a multiple
of 8), so a quick study compares networks of the same relative size. Every model is built
from a :class:`ModelSpec`, which checkpoints store, so ``predict`` and ``evaluate`` rebuild
any of them.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mtunet.model.config import MTUNetConfig

if TYPE_CHECKING:  # torch is imported where a network is built: the study plan needs none
    from torch import nn

BUILTIN_MODELS: tuple[str, ...] = ("mtunet", "unet", "attention_unet")
# The widths of the original U-Net and of Attention U-Net, before width_mult.
_CNN_WIDTHS = (64, 128, 256, 512, 1024)
_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Keys of the `model` section that are not MT-UNet hyper-parameters.
SPEC_KEYS = ("name", "kwargs")


def _scaled_widths(width_mult: float) -> tuple[int, ...]:
    return tuple(max(8, round(c * width_mult / 8) * 8) for c in _CNN_WIDTHS)


def _check_cnn_size(name: str, img_size: tuple[int, int]) -> None:
    if any(s % 16 for s in img_size):
        raise ValueError(
            f"model.img_size: {name} pools four times, so height and width must be multiples "
            f"of 16, got {img_size}"
        )


def _build_unet(cfg: MTUNetConfig) -> nn.Module:
    from monai.networks.nets import BasicUNet

    _check_cnn_size("unet", cfg.img_size)  # type: ignore[arg-type]
    widths = _scaled_widths(cfg.width_mult)
    # BasicUNet's last feature is the width of the final decoder block (64 in the original).
    return BasicUNet(
        spatial_dims=2,
        in_channels=cfg.in_channels,
        out_channels=cfg.num_classes,
        features=(*widths, widths[0]),
        act="relu",
        norm="batch",
    )


def _build_attention_unet(cfg: MTUNetConfig) -> nn.Module:
    from monai.networks.nets import AttentionUnet

    _check_cnn_size("attention_unet", cfg.img_size)  # type: ignore[arg-type]
    return AttentionUnet(
        spatial_dims=2,
        in_channels=cfg.in_channels,
        out_channels=cfg.num_classes,
        channels=_scaled_widths(cfg.width_mult),
        strides=(2, 2, 2, 2),
    )


def _load_factory(name: str) -> Callable[..., nn.Module]:
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(
            f"model.name: cannot import module {module_name!r} of {name!r} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"model.name: {module_name!r} has no callable {attr!r}")
    return factory


@dataclass(frozen=True)
class ModelSpec:
    """A network to build: its name, its user arguments and the shared model settings.

    Attributes:
        name: ``mtunet``, ``unet``, ``attention_unet`` or ``"package.module:factory"``.
        kwargs: Extra keyword arguments of a user factory (``model.kwargs``); must be empty
            for the built-in models.
        config: ``in_channels``, ``num_classes``, ``img_size`` and ``width_mult`` for every
            model, and MT-UNet's own hyper-parameters (ignored by the other models).
    """

    name: str = "mtunet"
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    config: MTUNetConfig = field(default_factory=MTUNetConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not (
            self.name in BUILTIN_MODELS or _FACTORY_RE.match(self.name)
        ):
            raise ValueError(
                f"model.name: expected one of {list(BUILTIN_MODELS)} or "
                f"'package.module:factory', got {self.name!r}"
            )
        if not isinstance(self.kwargs, Mapping):
            raise ValueError(f"model.kwargs: expected a mapping, got {self.kwargs!r}")
        if self.kwargs and self.name in BUILTIN_MODELS:
            raise ValueError(
                f"model.kwargs: only a user factory takes extra arguments; {self.name!r} is "
                "configured by the other keys of the model section"
            )
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    @property
    def is_custom(self) -> bool:
        """Whether the network comes from a user factory."""
        return self.name not in BUILTIN_MODELS

    @classmethod
    def from_params(
        cls, section: Mapping[str, Any] | None, name: str | None = None, where: str = "model"
    ) -> ModelSpec:
        """From a ``params.yaml`` ``model`` section; ``name`` overrides ``model.name``.

        Raises:
            ValueError: Unknown keys or invalid values, naming ``where``'s key.
        """
        section = dict(section or {})
        spec_name = name if name is not None else section.get("name", "mtunet")
        kwargs = section.get("kwargs") or {}
        rest = {k: v for k, v in section.items() if k not in SPEC_KEYS}
        return cls(spec_name, kwargs, MTUNetConfig.from_dict(rest, where))

    def with_data(self, in_channels: int, num_classes: int) -> ModelSpec:
        """The same spec for data with these channel and class counts."""
        cfg = dataclasses.replace(self.config, in_channels=in_channels, num_classes=num_classes)
        return dataclasses.replace(self, config=cfg)

    def build(self) -> nn.Module:
        """A freshly initialised network (draws from torch's global RNG).

        Returns:
            An ``nn.Module`` mapping (B, in_channels, H, W) to logits (B, num_classes, H, W).

        Raises:
            ValueError: An unusable ``img_size`` for the model, or a user factory that fails
                or returns something other than an ``nn.Module`` giving logits of that shape.
        """
        from torch import nn

        from mtunet.model.network import MTUNet

        cfg = self.config
        if self.name == "mtunet":
            return MTUNet(cfg)
        if self.name == "unet":
            return _build_unet(cfg)
        if self.name == "attention_unet":
            return _build_attention_unet(cfg)
        factory = _load_factory(self.name)
        try:
            model = factory(cfg.in_channels, cfg.num_classes, cfg.img_size, **self.kwargs)
        except Exception as exc:
            raise ValueError(
                f"model.name: {self.name} failed ({type(exc).__name__}: {exc})"
            ) from exc
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"model.name: {self.name} returned {type(model).__name__}, not a torch.nn.Module"
            )
        _check_output(model, self)
        return model

    def to_record(self) -> dict[str, Any]:
        """What a checkpoint stores to rebuild the network (plain JSON types)."""
        return {"name": self.name, "kwargs": dict(self.kwargs), "config": self.config.to_dict()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_record`."""
        cfg = MTUNetConfig.from_dict(dict(record.get("config") or {}), "model_config")
        return cls(str(record.get("name", "mtunet")), dict(record.get("kwargs") or {}), cfg)


def _check_output(model: nn.Module, spec: ModelSpec) -> None:
    """One forward pass on zeros: a user network must return logits of the input's size."""
    import torch

    cfg = spec.config
    h, w = cfg.img_size  # type: ignore[misc]
    was_training = model.training
    model.eval()  # eval: a probe must not move BatchNorm statistics
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, cfg.in_channels, h, w))
    except Exception as exc:
        raise ValueError(
            f"model.name: {spec.name} fails on a (2, {cfg.in_channels}, {h}, {w}) input "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        model.train(was_training)
    expected = (2, cfg.num_classes, h, w)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"model.name: {spec.name} must return logits of shape {expected} for a "
            f"(2, {cfg.in_channels}, {h}, {w}) input, got {got}"
        )


def complexity(model: nn.Module, in_channels: int, img_size: tuple[int, int]) -> dict[str, Any]:
    """Parameters and forward GFLOPs of one image, as segmentation papers tabulate them.

    FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add; ops it
    has no formula for, such as softmax and normalisation, count zero) on a CPU copy in eval
    mode, so the model's own state and device are untouched.

    Returns:
        ``{"params": int, "gflops": float, "input": [1, C, H, W]}``.
    """
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    probe = copy.deepcopy(model).to("cpu", torch.float32).eval()
    x = torch.zeros(1, in_channels, *img_size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        probe(x)
    return {
        "params": int(sum(p.numel() for p in model.parameters())),
        "gflops": counter.get_total_flops() / 1e9,
        "input": [1, in_channels, *img_size],
    }
