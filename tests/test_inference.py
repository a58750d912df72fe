"""Batched volume prediction against the published slice-by-slice loop, and its bad input."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from scipy.ndimage import zoom
from torch import nn

from mtunet.evaluation import EvalConfig
from mtunet.inference import predict_volume, resolve_device


class TinyNet(nn.Module):
    """A small conv net: (B, 1, H, W) -> (B, K, H, W) logits, input-dependent enough that
    argmax maps vary from pixel to pixel."""

    def __init__(self, num_classes: int = 4, in_channels: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, num_classes, 3, padding=1),
        )
        self.dropout = nn.Dropout(0.5)  # eval mode must switch it off

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.body(x * 4.0 - 2.0))


def reference_predict(
    model: nn.Module, image: np.ndarray, patch_size: tuple[int, int]
) -> np.ndarray:
    """The published ``test_single_volume`` loop (TransUNet/MT-UNet), one slice at a time."""
    prediction = np.zeros_like(image)
    model.eval()
    for ind in range(image.shape[0]):
        slc = image[ind, :, :]
        x, y = slc.shape[0], slc.shape[1]
        if x != patch_size[0] or y != patch_size[1]:
            slc = zoom(slc, (patch_size[0] / x, patch_size[1] / y), order=3)
        inp = torch.from_numpy(slc).unsqueeze(0).unsqueeze(0).float()
        with torch.no_grad():
            outputs = model(inp)
            out = torch.argmax(torch.softmax(outputs, dim=1), dim=1).squeeze(0)
            out = out.cpu().detach().numpy()
            if x != patch_size[0] or y != patch_size[1]:
                pred = zoom(out, (x / patch_size[0], y / patch_size[1]), order=0)
            else:
                pred = out
            prediction[ind] = pred
    return prediction


def _volume(z: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smooth blobs plus noise in [0, 1], like a normalised scan.
    base = rng.random((z, h // 4 + 1, w // 4 + 1)).astype(np.float32)
    vol = zoom(base, (1, h / base.shape[1], w / base.shape[2]), order=1)[:, :h, :w]
    vol = np.clip(vol + 0.05 * rng.standard_normal(vol.shape), 0, 1)
    return vol.astype(np.float32)


@pytest.fixture
def net() -> TinyNet:
    torch.manual_seed(1)
    model = TinyNet(num_classes=4)
    # Non-trivial BN statistics so eval and train mode differ.
    model.body[1].running_mean.uniform_(-0.5, 0.5)
    model.body[1].running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("shape", [(5, 40, 40), (3, 50, 37), (4, 32, 32), (2, 17, 60)])
def test_matches_published_slice_loop(net: TinyNet, shape: tuple[int, int, int]) -> None:
    image = _volume(*shape, seed=sum(shape))
    expected = reference_predict(net, image, (32, 32))
    got = predict_volume(net, image, 32, batch_size=3)
    assert got.dtype == np.uint8
    assert got.shape == image.shape
    np.testing.assert_array_equal(got, expected.astype(np.uint8))
    # The test is not vacuous: several classes are predicted.
    assert len(np.unique(got)) >= 2


def test_non_square_img_size(net: TinyNet) -> None:
    image = _volume(3, 45, 70, seed=3)
    got = predict_volume(net, image, (24, 40), batch_size=2)
    np.testing.assert_array_equal(got, reference_predict(net, image, (24, 40)).astype(np.uint8))
    assert got.shape == (3, 45, 70)


def test_batch_size_does_not_change_result(net: TinyNet) -> None:
    image = _volume(7, 48, 36, seed=7)
    results = [predict_volume(net, image, 32, batch_size=b) for b in (1, 2, 3, 7, 16)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_forward_is_batched() -> None:
    seen: list[int] = []

    class Recorder(TinyNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.shape[0])
            assert x.shape[1] == 1 and x.dtype == torch.float32
            return super().forward(x)

    predict_volume(Recorder(), _volume(10, 20, 20), 16, batch_size=4)
    assert seen == [4, 4, 2]


def test_restores_training_mode(net: TinyNet) -> None:
    net.train()
    image = _volume(2, 32, 32)
    a = predict_volume(net, image, 32)
    b = predict_volume(net, image, 32)
    np.testing.assert_array_equal(a, b)  # dropout and batch statistics were off
    assert net.training


def test_bf16_autocast_runs_on_cpu(net: TinyNet) -> None:
    image = _volume(3, 32, 32, seed=5)
    got = predict_volume(net, image, 32, amp_dtype=torch.bfloat16)
    ref = predict_volume(net, image, 32)
    assert got.shape == ref.shape and got.dtype == np.uint8
    # bfloat16 rounding flips only a few near-tie pixels.
    assert (got == ref).mean() > 0.9


def test_empty_volume(net: TinyNet) -> None:
    got = predict_volume(net, np.zeros((0, 20, 20), np.float32), 16)
    assert got.shape == (0, 20, 20) and got.dtype == np.uint8


def test_mtunet_tiny_volume() -> None:
    from mtunet.model import MTUNet, MTUNetConfig

    torch.manual_seed(0)
    model = MTUNet(MTUNetConfig(num_classes=3, img_size=32, width_mult=0.125))
    image = _volume(3, 40, 28, seed=11)
    got = predict_volume(model, image, 32, batch_size=2)
    np.testing.assert_array_equal(got, reference_predict(model, image, (32, 32)).astype(np.uint8))
    assert got.max() < 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image": np.zeros((4, 4), np.float32)}, "image"),
        ({"image": np.full((1, 8, 8), np.nan, np.float32)}, "image"),
        ({"img_size": (0, 8)}, "img_size"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_input(net: TinyNet, kwargs: dict, match: str) -> None:
    args = {"model": net, "image": np.zeros((2, 8, 8), np.float32), "img_size": 8}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        predict_volume(**args)


def test_refuses_multichannel_model() -> None:
    class ThreeChannel(TinyNet):
        class config:  # mimics MTUNet's ``.config`` attribute
            in_channels = 3

    with pytest.raises(ValueError, match="in_channels=3"):
        predict_volume(ThreeChannel(in_channels=3), np.zeros((1, 8, 8), np.float32), 8)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_eval_config_from_dict_and_ranges() -> None:
    cfg = EvalConfig.from_dict({"batch_size": 4, "empty_policy": "nan", "num_qualitative": 0})
    assert cfg.batch_size == 4 and cfg.empty_policy == "nan"
    assert EvalConfig.from_dict(cfg.to_dict()) == cfg
    for bad, field in [
        ({"batch_size": 0}, "batch_size"),
        ({"num_qualitative": -1}, "num_qualitative"),
        ({"empty_policy": "zero"}, "empty_policy"),
        ({"device": "gpu"}, "device"),
        ({"split": "train"}, "split"),
        ({"bf16": "yes"}, "bf16"),
        ({"batchsize": 4}, "batchsize"),
    ]:
        with pytest.raises(ValueError, match=field):
            EvalConfig.from_dict(bad)


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """Full float32 (no TF32) convolutions and matmuls on CUDA; the global flags are restored."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_full_float32_restores_the_global_flags() -> None:
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, True
        with pytest.raises(RuntimeError), full_float32():
            assert not torch.backends.cudnn.allow_tf32
            assert not torch.backends.cuda.matmul.allow_tf32
            raise RuntimeError("a failing assertion inside")
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(net: TinyNet) -> None:
    image = _volume(6, 50, 44, seed=9)
    cpu = predict_volume(net, image, 32, batch_size=4)
    gpu_net = TinyNet(num_classes=4)
    gpu_net.load_state_dict(net.state_dict())
    gpu_net.to("cuda")
    with full_float32():
        gpu = predict_volume(gpu_net, image, 32, batch_size=4)
    assert (gpu == cpu).mean() > 0.999  # float32 kernels differ only at exact ties
    bf16 = predict_volume(gpu_net, image, 32, batch_size=4, amp_dtype=torch.bfloat16)
    assert bf16.shape == cpu.shape and (bf16 == cpu).mean() > 0.9
    assert next(gpu_net.parameters()).device.type == "cuda"
