"""NIfTI reading into (Z, H, W), write-back in the source geometry, deterministic bytes."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from rawdata_helpers import save

from mtunet.data import nifti


def _oblique_permuted_affine() -> np.ndarray:
    # voxel axis 0 -> world S, axis 1 -> world L (x decreasing), axis 2 -> world A.
    return np.array(
        [[0.0, -0.7, 0.0, 10.0], [0.0, 0.0, 0.9, -5.0], [3.0, 0.0, 0.0, 2.0], [0, 0, 0, 1]]
    )


def test_canonical_orientation_matches_nibabel_and_round_trips(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    path = save(tmp_path / "scan.nii.gz", data, _oblique_permuted_affine())
    vol = nifti.read_volume(path, "canonical")
    canon = np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj)
    # Documented order: Z = S, H = A reversed, W = R reversed (radiological view).
    np.testing.assert_array_equal(vol.image, canon.transpose(2, 1, 0)[:, ::-1, ::-1])
    assert vol.image.shape == (4, 6, 5)
    assert vol.spacing == pytest.approx((3.0, 0.9, 0.7))
    out = nifti.write_like(vol, vol.image.astype(np.int16), tmp_path / "back.nii.gz", np.int16)
    back = nib.load(out)
    np.testing.assert_array_equal(np.asarray(back.dataobj), data)
    np.testing.assert_allclose(back.affine, _oblique_permuted_affine())
    # Geometry survives the HDF5 attribute round trip.
    geom = nifti.Geometry.from_attrs(vol.geometry.to_attrs())
    assert geom is not None
    np.testing.assert_array_equal(geom.from_zhw(vol.image), data)


def test_lps_axial_is_radiological(tmp_path: Path, lps_affine: np.ndarray) -> None:
    data = np.zeros((4, 3, 2), np.int16)  # axis 0: right -> left, axis 1: anterior -> posterior
    data[0, 0, 1] = 7  # patient's far right, most anterior, upper slice
    vol = nifti.read_volume(save(tmp_path / "a.nii", data, lps_affine))
    assert vol.image.shape == (2, 3, 4)
    assert vol.image[1, 0, 0] == 7  # top-left of the upper slice


def test_voxel_orientation_is_reversed_axes(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 9, (5, 4, 3)).astype(np.int16)
    vol = nifti.read_volume(save(tmp_path / "v.nii.gz", data, _oblique_permuted_affine()), "voxel")
    np.testing.assert_array_equal(vol.image, data.transpose(2, 1, 0))


def test_scaled_int16_applies_slope_and_intercept(tmp_path: Path) -> None:
    raw = np.array([[[0, 1], [2, 3]], [[100, 200], [-4, 2048]]], dtype=np.int16)
    path = save(tmp_path / "s.nii.gz", raw, np.eye(4), slope=0.5, inter=-1024.0)
    vol = nifti.read_volume(path, "voxel")
    assert vol.image.dtype == np.float32
    np.testing.assert_array_equal(vol.image, (raw * 0.5 - 1024.0).transpose(2, 1, 0))


def test_truncated_and_missing_files(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(-999, 999, (20, 20, 20)).astype(np.int16)
    path = save(tmp_path / "t.nii.gz", noise, np.eye(4))
    assert len(path.read_bytes()) > 2000
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"t\.nii\.gz: unreadable or truncated"):
        nifti.read_volume(path)
    with pytest.raises(FileNotFoundError, match=r"nope\.nii\.gz"):
        nifti.read_volume(tmp_path / "nope.nii.gz")


def test_save_nifti_is_deterministic(tmp_path: Path) -> None:
    arr = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    a = nifti.save_nifti(tmp_path / "a.nii.gz", arr, np.eye(4)).read_bytes()
    b = nifti.save_nifti(tmp_path / "b.nii.gz", arr, np.eye(4)).read_bytes()
    assert a == b
    assert a[4:8] == b"\x00\x00\x00\x00"  # gzip mtime field
    assert not list(tmp_path.glob(".*.tmp"))
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "a.nii.gz").dataobj), arr)
    assert gzip.decompress(a)[:4] == (348).to_bytes(4, "little")
