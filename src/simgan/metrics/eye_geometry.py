"""Eye geometry read off the pixels: iris centre and radius, and the lids around it.

SimGAN's premise (paper Sec. 3.1) is that the simulator gets the geometry right and the
refiner learns only appearance: a refiner must not widen an eye or grow an iris, since
that would move the labels. So the simulator's geometry has to be checked against the
real eyes it is refined toward (MPIIGaze, Zhang et al. CVPR 2015), which have no labels.
This module is one instrument, applied identically to both domains, that uses only the
image:

1. A light Gaussian blur (sigma 0.7 px) against JPEG noise and iris texture.
2. Two per-image levels: ``dark`` (3rd percentile: iris and pupil) and ``skin`` (the
   median: most of a crop is skin). Levels, not an area percentile, so that the iris
   size is measured rather than imposed.
3. The iris blob: pixels below 30% of the way from dark to skin (darker than most lash
   lines), opened with a 5 x 5 disc (drops thin lashes), the component with the most
   darkness; then opened again with a disc of 0.6 times its own inscribed radius, which
   cuts the necks through which a shadowed eye corner joins the iris (the iris is the
   blob's thickest part).
4. Centre and radius: a circle fitted (algebraic least squares, refitted twice without
   points more than 1.5 px off) to the iris edge at both ends of every row of the blob.
   Each edge is where the row crosses halfway from ``dark`` to the brightest value
   within 4 px outside the blob, so a shadowed sclera still gives its own edge. Lids
   clip the iris at the top and bottom, not at the sides, so these are iris edges.
5. The lids: on the column through the iris centre, the dark run around the centre
   (below the midpoint of dark and skin) ends at the upper and lower lid. Lashes
   darken the lid margin, so the run reaches a little past the upper lid edge.

An image fails (``ok`` False, values NaN) when it has too little contrast, no blob of
at least 30 px, fewer than 3 edge points on either side of the iris (one side's arc
cannot tell a small circle from a large one), or an implausible fit (radius outside
3..18 px at 36 x 60, or centre outside the image).

Known limits (validated against the renderer's drawn geometry in
tests/test_eye_geometry.py; numbers in docs/evaluation.md): where the lids leave sclera
showing above or below the iris, the iris edge is read as the lid (the opening comes
out short); an iris that is not darker than 30% of the way to skin is read by its
pupil; strongly foreshortened irises (large yaw) read a little small.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_BLUR_SIGMA = 0.7
_DARK_PCT, _SKIN_PCT = 3.0, 50.0
_MIN_CONTRAST = 20.0  # grey levels between dark and skin; less is no visible iris
_SEG_FRAC = 0.3
_DISC = np.hypot(*np.mgrid[-2:3, -2:3]) <= 2.0
_MIN_BLOB = 30
_CORE_FRAC = 0.6
_EDGE_REACH = 4
_MIN_EDGE = 0.25  # an edge's bright side must rise this far from dark toward skin
_MIN_SIDE = 3
_TRIM_PX = 1.5

FIELDS = ("x", "y", "iris_r", "opening", "upper_lid", "lower_lid")


def measure_eyes(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image geometry of grayscale eyes, ``uint8`` ``(N, H, W)`` or ``(N, 1, H, W)``.

    Returns float64 arrays of length N, in px: ``x``, ``y`` (iris centre; pixel centres
    at integer coordinates, like the simulator's ``pupil`` label), ``iris_r``,
    ``opening`` (between the lids, on the column through the iris centre),
    ``upper_lid`` / ``lower_lid`` (how far the upper lid lies above / the lower lid
    below the iris centre; they sum to ``opening``), and a boolean ``ok``; where
    ``ok`` is False the values are NaN.
    """
    images = np.asarray(images)
    if images.ndim == 4:
        if images.shape[1] != 1:
            raise ValueError(f"eye geometry: expects one channel, got shape {images.shape}")
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"eye geometry: expects (N, H, W) images, got shape {images.shape}")
    out = {k: np.full(len(images), np.nan) for k in FIELDS}
    for i, image in enumerate(images):
        found = measure_eye(image)
        if found is not None:
            for k in FIELDS:
                out[k][i] = found[k]
    out["ok"] = np.isfinite(out["x"])
    return out


def measure_eye(image: np.ndarray) -> dict[str, float] | None:
    """Geometry of one ``(H, W)`` eye (see :func:`measure_eyes`), or None if it fails."""
    f = ndimage.gaussian_filter(np.asarray(image, np.float64), _BLUR_SIGMA, mode="nearest")
    dark, skin = np.percentile(f, (_DARK_PCT, _SKIN_PCT))
    if skin - dark < _MIN_CONTRAST:
        return None
    blob = _iris_blob(f, dark + _SEG_FRAC * (skin - dark))
    if blob is None:
        return None
    points = _side_edges(f, blob, dark, skin)
    if min(np.sum(points[:, 2] < 0), np.sum(points[:, 2] > 0)) < _MIN_SIDE:
        return None
    circle = _fit_circle(points[:, :2])
    if circle is None:
        return None
    x, y, r = circle
    h, w = f.shape
    size = min(h / 36.0, w / 60.0)
    if not (3.0 * size <= r <= 18.0 * size and 0 <= x <= w - 1 and 0 <= y <= h - 1):
        return None
    lids = _lids(f, x, y, 0.5 * (dark + skin))
    if lids is None:
        return None
    top, bottom = lids
    return {"x": x, "y": y, "iris_r": r, "opening": bottom - top,
            "upper_lid": y - top, "lower_lid": bottom - y}


def _iris_blob(f: np.ndarray, thr: float) -> np.ndarray | None:
    """Mask of the iris: the darkest blob below ``thr``, without lashes or corner shadows."""
    mask = ndimage.binary_opening(f < thr, structure=_DISC)
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    weight = ndimage.sum(np.clip(thr - f, 0.0, None), labels, index=np.arange(1, n + 1))
    blob = labels == int(np.argmax(weight)) + 1
    if blob.sum() < _MIN_BLOB:
        return None
    depth = ndimage.distance_transform_edt(blob)
    core = np.unravel_index(int(np.argmax(depth)), blob.shape)
    rad = max(2.0, _CORE_FRAC * float(depth.max()))
    k = int(rad)
    disc = np.hypot(*np.mgrid[-k : k + 1, -k : k + 1]) <= rad
    labels, _ = ndimage.label(ndimage.binary_opening(blob, structure=disc))
    return labels == labels[core] if labels[core] else blob


def _crossing(a: float, b: float, level: float) -> float:
    """Where the segment from value a (at 0) to b (at 1) crosses level, clipped to [0, 1]."""
    return float(np.clip((a - level) / (a - b), 0.0, 1.0)) if a != b else 0.5


def _side_edges(f: np.ndarray, blob: np.ndarray, dark: float, skin: float) -> np.ndarray:
    """Rows of (x, y, side) for the iris edge at both ends of the blob on every row;
    side is -1 (left) or 1 (right), x is sub-pixel."""
    w = f.shape[1]
    points = []
    for y in np.flatnonzero(blob.any(axis=1)):
        cols = np.flatnonzero(blob[y])
        row = f[y]
        for start, step in ((cols[0], -1), (cols[-1], 1)):
            stop = int(np.clip(start + step * _EDGE_REACH, 0, w - 1))
            bright = row[min(start, stop) : max(start, stop) + 1].max()
            if bright - dark < _MIN_EDGE * (skin - dark):
                continue  # nothing bright beside the blob: the edge is not visible here
            level = 0.5 * (dark + bright)
            x = start
            while x != stop and row[x + step] < level:
                x += step
            if x != stop:
                points.append((x + step * _crossing(row[x], row[x + step], level), y, step))
    return np.asarray(points, np.float64).reshape(-1, 3)


def _fit_circle(points: np.ndarray) -> tuple[float, float, float] | None:
    """Algebraic (Kasa) circle fit of (x, y) points, refitted twice without outliers."""
    keep = np.ones(len(points), bool)
    circle = None
    for _ in range(3):
        if keep.sum() < 6:
            return None
        x, y = points[keep].T
        a = np.stack([x, y, np.ones_like(x)], axis=1)
        sol, *_ = np.linalg.lstsq(a, x * x + y * y, rcond=None)
        cx, cy = sol[0] / 2, sol[1] / 2
        r2 = sol[2] + cx * cx + cy * cy
        if r2 <= 0:
            return None
        circle = (float(cx), float(cy), float(np.sqrt(r2)))
        keep = np.abs(np.hypot(points[:, 0] - cx, points[:, 1] - cy) - circle[2]) <= _TRIM_PX
    return circle


def _lids(f: np.ndarray, x: float, y: float, level: float) -> tuple[float, float] | None:
    """Sub-pixel rows of the upper and lower lid on the column through the iris centre."""
    h = f.shape[0]
    c = int(round(x))
    profile = f[:, max(c - 1, 0) : c + 2].mean(axis=1)  # 3 columns: less noise
    yc = int(round(y))
    if not 0 <= yc < h or profile[yc] >= level:
        return None
    return yc - _run_end(profile[yc::-1], level), yc + _run_end(profile[yc:], level)


def _run_end(profile: np.ndarray, level: float) -> float:
    """Sub-pixel distance from profile[0] to where the run below ``level`` ends."""
    end = 0
    while end + 1 < len(profile) and profile[end + 1] < level:
        end += 1
    if end + 1 == len(profile):
        return float(end)
    return end + _crossing(profile[end], profile[end + 1], level)
