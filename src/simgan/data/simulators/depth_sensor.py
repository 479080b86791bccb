"""A STAND-IN "real" domain for the hand experiment: simulated sensor depth, not real data.

The paper's real domain (SimGAN, Shrivastava et al., CVPR 2017, Sec. 4.3) is Kinect depth
from the NYU hand pose dataset (Tompson et al., SIGGRAPH 2014), which needs a download
(convert it with ``python -m simgan.data.convert nyu-hand``). So that the hand
experiment runs out of the box, this module makes an unlabeled stand-in: hands drawn
from a seed stream independent of :func:`~simgan.data.simulators.hand_depth.render_hand_depth`,
with a forearm and background clutter, passed through an explicit structured-light
depth-sensor model. A refiner trained against it learns to add this model's artifacts,
nothing about any real camera: use it to exercise the pipeline, never report it as real.

The sensor model (Kinect v1-like), applied to metric depth in millimetres:

- axial noise growing with distance, sigma(z) = 1.2 mm + 1.9e-3 (z - 400 mm)^2 / 1000 mm
  (Nguyen, Izadi and Lovell, 3DIMPVT 2012);
- disparity quantization, z = C / round(C / z) with C = 8 * 75 mm * 580 px (1/8-pixel
  disparity, 75 mm baseline, 580 px focal; Khoshelham and Elberink, Sensors 2012), then
  whole millimetres as the Kinect reports (and the NYU PNGs store). The crop centre z_c
  is a whole number of mm too, so the steps survive normalization: d * cube / 2 is an
  integer;
- missing pixels, set to the background value: the projector's shadow beside occluding
  edges (width from the disparity jump), depth discontinuities, grazing angles (surface
  normal more than ~75 degrees from the ray), and speckle dropouts.

Missing pixels become background (normalized depth 1), as in the NYU crops.
"""

from __future__ import annotations

import numpy as np

from simgan.data.simulators.hand_depth import (
    CUBE_MM, HandBatch, intrinsics, normalize_depth, raycast, sample_hands,
)

RENDER_VERSION = 1
_C_DISPARITY = 8 * 75.0 * 580.0   # mm * (1/8 px): z = C / d
_BASELINE_MM = 75.0
_NATIVE_FOCAL = 580.0
_GRAZING_COS = np.cos(np.deg2rad(75.0))


def _clutter(rng: np.random.Generator, hands: HandBatch, cube: float) -> tuple[np.ndarray, np.ndarray]:
    """Extra capsules: the forearm (most frames) and 0-3 blobs behind the hand."""
    n = len(hands.joints)
    wrist = hands.joints[:, 0]
    # Forearm leaves the wrist away from the fingers, bent at random (wrist and elbow).
    # Biased down and away from the camera, toward a body behind the hand.
    away = -hands.rotation[:, :, 1] + np.asarray([0.0, 0.4, 0.8]) + rng.normal(0, 0.25, (n, 3))
    away /= np.linalg.norm(away, axis=1, keepdims=True)
    arm = np.stack([wrist - 0.1 * cube * away, wrist + 1.5 * cube * away], 1)
    arm_r = rng.uniform(24.0, 32.0, n)
    # No arm in ~10% of frames: radius zero never hits.
    arm_r[rng.uniform(size=n) < 0.1] = 0.0

    count = rng.integers(0, 4, n)
    centres = np.concatenate([rng.uniform(-0.5, 0.5, (n, 3, 2)) * cube,
                              hands.z_centre[:, None, None] + rng.uniform(0.15, 0.7, (n, 3, 1)) * cube], 2)
    blob_r = rng.uniform(15.0, 50.0, (n, 3)) * (np.arange(3) < count[:, None])
    blobs = np.stack([centres, centres + rng.normal(0, 20.0, (n, 3, 3))], 2)
    return np.concatenate([arm[:, None], blobs], 1), np.concatenate([arm_r[:, None], blob_r], 1)


def _table(rng: np.random.Generator, z_centre: np.ndarray, height: int, width: int,
           focal: np.ndarray, principal: np.ndarray, cube: float) -> np.ndarray:
    """Depth of a tilted plane behind the hand in about half the frames (inf elsewhere)."""
    n = len(z_centre)
    tilt, roll = np.deg2rad(rng.uniform(20, 60, n)), rng.uniform(-np.pi, np.pi, n)
    normal = np.stack([np.sin(tilt) * np.cos(roll), np.sin(tilt) * np.sin(roll), -np.cos(tilt)], 1)
    point = np.stack([np.zeros(n), np.zeros(n), z_centre + rng.uniform(0.15, 0.5, n) * cube], 1)
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    # Ray through a pixel: X = z (x', y', 1); on the plane: n . X = n . P.
    x = (u[None] - principal[0]) / focal[:, 0, None, None]
    y = (v[None] - principal[1]) / focal[:, 1, None, None]
    denom = normal[:, 0, None, None] * x + normal[:, 1, None, None] * y + normal[:, 2, None, None]
    with np.errstate(divide="ignore"):
        z = (normal * point).sum(1)[:, None, None] / denom
    z[~(z > 0) | (rng.uniform(size=n) < 0.5)[:, None, None]] = np.inf
    return z.astype(np.float32)


def _grazing(depth: np.ndarray, focal: np.ndarray, principal: np.ndarray) -> np.ndarray:
    """Pixels whose surface normal is near perpendicular to the ray (from the depth map)."""
    n, h, w = depth.shape
    x = ((np.arange(w, dtype=np.float32) + 0.5 - principal[0]) / focal[:, 0, None]).astype(np.float32)[:, None, :]
    y = ((np.arange(h, dtype=np.float32) + 0.5 - principal[1]) / focal[:, 1, None]).astype(np.float32)[:, :, None]
    z = np.where(np.isfinite(depth), depth, np.nan).astype(np.float32)
    p = (x * z, y * z, z)
    du = [np.gradient(c, axis=2) for c in p]
    dv = [np.gradient(c, axis=1) for c in p]
    normal = (du[1] * dv[2] - du[2] * dv[1], du[2] * dv[0] - du[0] * dv[2], du[0] * dv[1] - du[1] * dv[0])
    with np.errstate(invalid="ignore"):
        dot = np.abs(sum(a * b for a, b in zip(normal, p)))
        cos = dot / np.sqrt(sum(a * a for a in normal) * sum(b * b for b in p))
    return cos < _GRAZING_COS   # NaN (no data or an edge) compares False


def _shadow(depth: np.ndarray, focal: np.ndarray) -> np.ndarray:
    """Projector shadow: a surface just right of an occluding edge gets no pattern.

    A pixel is shadowed if a nearer surface s pixels to its left shifts the pattern by
    at least s pixels: f b (1/z_near - 1/z) >= s (structured light, baseline b).
    """
    finite = np.isfinite(depth)
    disparity = np.where(finite, focal[:, 0, None, None] * _BASELINE_MM / depth, 0.0).astype(np.float32)
    shadow = np.zeros(depth.shape, dtype=bool)
    max_shift = int(np.ceil(disparity.max() - disparity[finite].min())) if finite.any() else 0
    for s in range(1, min(max_shift, depth.shape[2] - 1) + 1):
        shadow[:, :, s:] |= (disparity[:, :, :-s] - disparity[:, :, s:]) >= s
    return shadow & finite


def _discontinuity(depth: np.ndarray, jump_mm: float = 12.0) -> np.ndarray:
    """Pixels next to a depth jump (the structured-light matcher fails across edges)."""
    z = np.where(np.isfinite(depth), depth, 1e5)
    edge = np.zeros(depth.shape, dtype=bool)
    dx = np.abs(np.diff(z, axis=2)) > jump_mm
    dy = np.abs(np.diff(z, axis=1)) > jump_mm
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:] |= dy
    edge[:, :-1] |= dy
    return edge & np.isfinite(depth)


def _speckles(rng: np.random.Generator, shape: tuple[int, int, int], coverage: float = 0.03) -> np.ndarray:
    """Small blobs of dropouts (IR absorption, specularities): thresholded smooth noise."""
    n, h, w = shape
    coarse = rng.normal(size=(n, max(2, h // 6), max(2, w // 6)))
    # Nearest upsampling then a 3x3 box blur: blobs of a few pixels.
    fine = coarse[:, (np.arange(h) * coarse.shape[1]) // h][:, :, (np.arange(w) * coarse.shape[2]) // w]
    fine = fine + rng.normal(0, 0.5, fine.shape)
    pad = np.pad(fine, ((0, 0), (1, 1), (1, 1)), mode="edge")
    blur = sum(pad[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
    return blur > np.quantile(blur, 1.0 - coverage)


def apply_sensor_model(depth_mm: np.ndarray, focal: np.ndarray, principal: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Noise, quantization and missing pixels on metric depth (mm; inf = no return)."""
    depth = depth_mm.astype(np.float64)
    finite = np.isfinite(depth)
    z = np.where(finite, depth, 1000.0)
    sigma = 1.2 + 1.9e-3 * (z - 400.0) ** 2 / 1000.0
    z = z + rng.normal(size=z.shape) * sigma
    z = _C_DISPARITY / np.maximum(np.round(_C_DISPARITY / np.maximum(z, 1.0)), 1.0)
    z = np.round(z)
    noisy = np.where(finite, z, np.inf)

    # Edge and grazing dropouts are a pixel or two wide at the sensor's resolution: in
    # output pixels their rate scales with output/native pixel size (a 64 px crop of a
    # hand spans ~350 Kinect pixels), or thin fingers would vanish at small sizes.
    ratio = np.clip(focal[:, 0] / _NATIVE_FOCAL, 0.05, 1.0)[:, None, None]
    missing = _shadow(depth, focal)
    missing |= _discontinuity(depth) & (rng.uniform(size=depth.shape) < np.minimum(0.5, 1.5 * ratio))
    missing |= _grazing(depth, focal, principal) & (rng.uniform(size=depth.shape) < np.minimum(0.8, 1.5 * ratio))
    missing |= _speckles(rng, depth.shape)
    noisy[missing] = np.inf
    return noisy.astype(np.float32)


def _render_chunk(rng: np.random.Generator, n: int, height: int, width: int, cube: float) -> np.ndarray:
    hands = sample_hands(rng, n, cube)
    extra, extra_r = _clutter(rng, hands, cube)
    focal, principal = intrinsics(height, width, hands.z_centre, cube)
    depth = raycast(np.concatenate([hands.capsules, extra], 1), np.concatenate([hands.radii, extra_r], 1),
                    hands.ellipsoids, height, width, focal, principal)
    depth = np.minimum(depth, _table(rng, hands.z_centre, height, width, focal, principal, cube))
    depth = apply_sensor_model(depth, focal, principal, rng)
    return normalize_depth(depth, hands.z_centre, cube)


def render_sensor_hands(n: int, height: int = 64, width: int = 64, seed: int = 0,
                        cube: float = CUBE_MM) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """STAND-IN sensor-domain hand depth maps (unlabeled; not real data).

    Independent hands (a seed stream distinct from ``render_hand_depth``'s) with forearm
    and clutter, through :func:`apply_sensor_model`. Returns images float32
    N x 1 x H x W in [-1, 1] (background and missing pixels = 1) and ``{}``.
    """
    images = np.empty((n, 1, height, width), np.float32)
    # Chunks bound the sensor model's memory; each has its own seed, so the result
    # depends only on (n, height, width, seed).
    chunk = max(1, 2 ** 21 // (height * width))
    for k, start in enumerate(range(0, n, chunk)):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x53454E53, k]))
        m = min(chunk, n - start)
        images[start:start + m, 0] = _render_chunk(rng, m, height, width, cube)
    return images, {}
