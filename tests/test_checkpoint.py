"""Checkpoint format: atomic save, weights_only loading, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from mtunet.checkpoint import (
    check_data_compatible,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from mtunet.model import MTUNet, MTUNetConfig

CFG = MTUNetConfig(width_mult=0.125, img_size=32, num_classes=4)


def _payload(model: torch.nn.Module) -> dict[str, Any]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(2, 1, 32, 32)).sum().backward()
    opt.step()
    return {
        "format": "mtunet-checkpoint",
        "version": 1,
        "model_config": CFG.to_dict(),
        "train_config": {"preset": "mtunet", "lr": 1e-4},
        "data": {"dataset": "acdc", "num_classes": 4, "in_channels": 1, "img_size": [32, 32]},
        "epoch": 3,
        "global_step": 30,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": {"torch": [torch.get_rng_state()], "cuda": []},
        "selection": {"rule": "last", "epoch": 3, "val_dice": None},
    }


def test_round_trip_and_model_rebuild(tmp_path: Path) -> None:
    model = MTUNet(CFG)
    payload = _payload(model)
    path = save_checkpoint(tmp_path / "sub" / "last.pt", payload)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp files left
    ck = load_checkpoint(path)
    assert ck["epoch"] == 3 and ck["selection"]["rule"] == "last"
    assert torch.equal(ck["rng"]["torch"][0], payload["rng"]["torch"][0])
    rebuilt, ck2 = model_from_checkpoint(path)
    assert not rebuilt.training
    assert rebuilt.config == CFG
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    x = torch.rand(1, 1, 32, 32)
    model.eval()
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    # A dict works as well as a path.
    again, _ = model_from_checkpoint(ck2)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage.pt: corrupt or unreadable checkpoint"):
        load_checkpoint(garbage)
    good = save_checkpoint(tmp_path / "good.pt", _payload(MTUNet(CFG)))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated.pt: corrupt or unreadable"):
        load_checkpoint(truncated)


def test_not_an_mtunet_checkpoint(tmp_path: Path) -> None:
    bare = tmp_path / "bare.pt"
    torch.save(MTUNet(CFG).state_dict(), bare)
    with pytest.raises(ValueError, match=r"not an mtunet checkpoint.*bare state_dict"):
        load_checkpoint(bare)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else", "model": {}}, other)
    with pytest.raises(ValueError, match=r"format 'something-else'"):
        load_checkpoint(other)
    newer = _payload(MTUNet(CFG))
    newer["version"] = 99
    torch.save(newer, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match=r"unsupported checkpoint version 99"):
        load_checkpoint(tmp_path / "newer.pt")
    partial = _payload(MTUNet(CFG))
    del partial["model_config"]
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"missing key\(s\) \['model_config'\]"):
        load_checkpoint(tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"missing key"):
        save_checkpoint(tmp_path / "x.pt", partial)


def test_unsafe_pickle_is_refused(tmp_path: Path) -> None:
    """weights_only=True: arbitrary Python objects in the file are not unpickled."""

    path = tmp_path / "unsafe.pt"
    payload = _payload(MTUNet(CFG))
    payload["extra"] = Path("/etc/passwd")  # not an allowed weights_only type
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"unsafe.pt: corrupt or unreadable"):
        load_checkpoint(path)
    # ... and save_checkpoint refuses to write such a file in the first place.
    with pytest.raises(ValueError, match=r"\['extra'\]: PosixPath is not a plain type"):
        save_checkpoint(tmp_path / "refused.pt", payload)
    assert not (tmp_path / "refused.pt").exists()


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    payload = _payload(MTUNet(CFG))
    payload["model_config"] = MTUNetConfig(width_mult=0.25, img_size=32, num_classes=4).to_dict()
    save_checkpoint(tmp_path / "mismatch.pt", payload)
    with pytest.raises(ValueError, match=r"mismatch.pt: the weights do not fit"):
        model_from_checkpoint(tmp_path / "mismatch.pt")
    payload["model_config"] = {**CFG.to_dict(), "num_heads": 0}
    save_checkpoint(tmp_path / "badcfg.pt", payload)
    with pytest.raises(ValueError, match=r"badcfg.pt: invalid model_config"):
        model_from_checkpoint(tmp_path / "badcfg.pt")


def test_wrong_shape_error_is_short_and_names_the_cause(tmp_path: Path) -> None:
    """MT-UNet weights of another width and class count: 426 tensors differ, 5 are shown."""
    payload = _payload(MTUNet(CFG))
    payload["model_config"] = MTUNetConfig(width_mult=0.25, img_size=32, num_classes=9).to_dict()
    save_checkpoint(tmp_path / "other.pt", payload)
    with pytest.raises(ValueError) as info:
        model_from_checkpoint(tmp_path / "other.pt")
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'other.pt'}: the weights do not fit the network")
    assert "shape mismatches (426): " in msg and " ... and 421 more" in msg
    assert msg.count("(checkpoint (") == 5
    assert "a different num_classes (the weights' output layer SegmentationHead.weight has 4" in msg
    assert "a different width_mult (the weights' channel widths are about 0.5x" in msg


def test_data_compatibility() -> None:
    ck = _payload(MTUNet(CFG))
    check_data_compatible(ck, num_classes=4, in_channels=1)  # fine
    with pytest.raises(
        ValueError, match=r"ck.pt: the checkpoint predicts 4 classes but the data has 9"
    ):
        check_data_compatible(ck, num_classes=9, source="ck.pt")
    with pytest.raises(ValueError, match=r"in_channels=1 but the data has 3"):
        check_data_compatible(ck, in_channels=3)
