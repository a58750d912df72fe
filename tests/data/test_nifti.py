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


def _save_with_sform(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write a NIfTI whose sform is ``affine`` (qform unset), as a scanner export might.

    ``nib.Nifti1Image(data, affine)`` refuses a singular affine (it cannot make a qform of
    it), so the header is filled in directly; nibabel then reads ``affine`` back.
    """
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(data.shape)
    hdr.set_zooms(tuple(float(z) or 1.0 for z in np.sqrt((affine[:3, :3] ** 2).sum(0))))
    hdr.set_sform(affine, code=1)
    hdr.set_qform(None, code=0)
    nib.save(nib.Nifti1Image(data, None, hdr), path)
    np.testing.assert_allclose(nib.load(path).affine, affine, rtol=1e-6)  # what readers see
    return path


@pytest.mark.parametrize("orientation", ["canonical", "voxel"])
@pytest.mark.parametrize(
    "affine",
    [
        np.diag([1.0, 1.0, 0.0, 1.0]),  # a zero row (and column)
        np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]),  # zero row
        np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]),  # rank 2
        np.diag([0.0, 0.0, 0.0, 1.0]),  # all zero
    ],
)
def test_degenerate_affine_names_the_file(
    tmp_path: Path, affine: np.ndarray, orientation: nifti.Orientation
) -> None:
    # read_volume is what preprocessing (synapse/acdc) and `mtunet predict` read scans with.
    path = _save_with_sform(tmp_path / "flat.nii.gz", np.zeros((4, 5, 6), np.int16), affine)
    with pytest.raises(ValueError, match=r"flat\.nii\.gz: degenerate voxel-to-world affine"):
        nifti.read_volume(path, orientation)


def test_degenerate_affine_error_shows_the_affine(tmp_path: Path) -> None:
    affine = np.array([[2.5, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
    path = _save_with_sform(tmp_path / "z.nii", np.zeros((2, 3, 4), np.int16), affine)
    with pytest.raises(ValueError, match=r"z\.nii: .*\[\[2\.5, 0\.0, 0\.0, 0\.0\], "):
        nifti.read_volume(path)


@pytest.mark.parametrize("bad", [np.diag([1.0, 0.0, 1.0, 1.0]), np.full((4, 4), np.nan)])
def test_geometry_for_rejects_a_degenerate_affine(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="degenerate voxel-to-world affine"):
        nifti.geometry_for(bad, (2, 3, 4))


def test_nearly_singular_but_valid_affine_still_reads(tmp_path: Path) -> None:
    # Tiny but full-rank voxel sizes (0.01 mm) are unusual, not degenerate.
    affine = np.diag([0.01, 0.01, 0.02, 1.0])
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    vol = nifti.read_volume(_save_with_sform(tmp_path / "tiny.nii.gz", data, affine))
    assert vol.image.shape == (4, 3, 2)
    assert vol.spacing == pytest.approx((0.02, 0.01, 0.01))
