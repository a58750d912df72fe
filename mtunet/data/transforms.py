"""The published training augmentation and resizing (TransUNet / MT-UNet ``RandomGenerator``).

With probability 1/2 a random ``rot90`` (k in 0..3) followed by a flip along a random axis;
otherwise, with probability 1/2, a rotation by an integer angle in [-20, 20) degrees
(``scipy.ndimage.rotate``, order 0 for image and label, no reshape); then both are resized
to ``img_size`` with ``scipy.ndimage.zoom`` (image order 3, label order 0). The random
numbers come from a ``numpy.random.Generator`` the caller seeds (see
:func:`sample_rng`), so results do not depend on worker count or resuming.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample: a function of (seed, epoch, index) only."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def random_rot_flip(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``rot90`` by k in 0..3 then a flip along axis 0 or 1 (same for image and label)."""
    k = int(rng.integers(0, 4))
    axis = int(rng.integers(0, 2))
    image = np.flip(np.rot90(image, k), axis=axis)
    label = np.flip(np.rot90(label, k), axis=axis)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def random_rotate(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by an integer angle in [-20, 20) degrees, nearest neighbour, same shape."""
    angle = int(rng.integers(-20, 20))
    image = ndimage.rotate(image, angle, order=0, reshape=False)
    label = ndimage.rotate(label, angle, order=0, reshape=False)
    return image, label


def augment(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The published random augmentation of one (H, W) slice and its label (same shape)."""
    if rng.random() > 0.5:
        return random_rot_flip(image, label, rng)
    if rng.random() > 0.5:
        return random_rotate(image, label, rng)
    return image, label


def resize(
    image: np.ndarray, label: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Zoom an (H, W) image (order 3) and label (order 0) to ``size`` = (h, w)."""
    h, w = image.shape
    if (h, w) == tuple(size):
        return image, label
    factors = (size[0] / h, size[1] / w)
    image = ndimage.zoom(image, factors, order=3)
    label = ndimage.zoom(label, factors, order=0)
    return image, label
