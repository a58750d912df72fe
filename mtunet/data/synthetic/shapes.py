"""Drawing helpers shared by the phantoms.

Coordinates are normalised: z in [0, 1] from the first to the last slice, h and w in [-1, 1]
across the field of view.
"""

from __future__ import annotations

import numpy as np


def paint_ellipsoid(
    hu: np.ndarray | None,
    lab: np.ndarray | None,
    grids: tuple[np.ndarray, np.ndarray, np.ndarray],
    center: tuple[float, float, float],
    radii: tuple[float, float, float],
    value: float,
    label: int | None,
    wobble: tuple[float, int, float] = (0.0, 3, 0.0),
    bend: float = 0.0,
) -> None:
    """Set voxels inside a (wobbly, optionally bent) ellipsoid, in its bounding box only."""
    zc, hc, wc = grids
    cz, ch, cw = center
    rz, rh, rw = radii
    amp = wobble[0]
    pad = 1.0 + abs(amp) + 1e-3
    zs = np.flatnonzero(np.abs(zc - cz) <= rz * pad)
    hs = np.flatnonzero(np.abs(hc - ch) <= rh * pad + abs(bend))
    ws = np.flatnonzero(np.abs(wc - cw) <= rw * pad)
    if not (zs.size and hs.size and ws.size):
        return
    z = zc[zs][:, None, None]
    w = wc[ws][None, None, :]
    h = hc[hs][None, :, None] - bend * ((w - cw) / rw) ** 2  # a banana (pancreas, stomach)
    dz, dh, dw = (z - cz) / rz, (h - ch) / rh, (w - cw) / rw
    dist = dz**2 + dh**2 + dw**2
    if amp:
        theta = np.arctan2(dh, dw)
        dist = dist * (1.0 + amp * np.sin(wobble[1] * theta + wobble[2]))
    inside = dist < 1.0
    box = (slice(zs[0], zs[-1] + 1), slice(hs[0], hs[-1] + 1), slice(ws[0], ws[-1] + 1))
    if hu is not None:
        hu[box][inside] = value
    if lab is not None and label is not None:
        lab[box][inside] = label


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], scale: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled linearly."""
    from scipy import ndimage

    coarse = rng.uniform(-1, 1, size=tuple(max(2, s // scale + 2) for s in shape))
    factors = [s / c for s, c in zip(shape, coarse.shape, strict=True)]
    out = ndimage.zoom(coarse, factors, order=1, mode="nearest")
    return out[tuple(slice(0, s) for s in shape)].astype(np.float32)
