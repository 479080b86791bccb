"""Procedural hand depth maps: the synthetic domain of the paper's hand pose experiment.

SimGAN (Shrivastava et al., CVPR 2017) Sec. 4.3 refines synthetic depth maps of hands
(from the NYU hand pose dataset, Tompson et al., SIGGRAPH 2014) toward real Kinect depth.
This module makes such a synthetic domain without any download: an articulated hand of
capsules and ellipsoids is posed at random and ray-cast into a depth map, batch-vectorized
in numpy (no loops over pixels or hands).

The hand: palm (flattened ellipsoid + four metacarpal capsules), a wrist stub, the thumb
(metacarpal, proximal, distal) and four fingers (proximal, middle, distal phalanx), each
bone a capsule. Joint angles are drawn within anatomical limits, coupled through a
per-hand "grasp" value so that poses range from flat hands to fists and pointing, with
the distal joint following ~2/3 of the middle joint as in real fingers.

The camera and normalization copy the usual NYU preprocessing (DeepPrior, Oberweger et
al. 2015; also ``simgan.data.convert.nyu_hand``): the image is the crop of a ``cube`` mm
cube centred on the joints' mean, at 300-600 mm from the camera, and depth is normalized
as ``(z - z_c) / (cube / 2)`` clipped to [-1, 1], background (and everything beyond the
cube) = 1 (far). ``z_c`` is an integer number of millimetres (why: see depth_sensor).

Joints (21, in this order): wrist; thumb CMC, MCP, IP, tip; then index, middle, ring,
pinky each MCP, PIP, DIP, tip. Labels ``joints``: N x 21 x 3 = (u, v, d) with u, v in
pixels, pixel centres at integer coordinates (u = column, v = row, as the eye
simulator's ``pupil`` and the ``nyu-hand`` converter's joints), and d the normalized
depth of the joint centre (inside the finger, so slightly behind the visible surface).
Camera: x right, y down, z forward (OpenCV), principal point at the crop centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RENDER_VERSION = 1
CUBE_MM = 300.0
DISTANCE_MM = (300.0, 600.0)

# Hand frame (mm, right hand): origin at the wrist, +y toward the middle finger,
# +x toward the thumb, +z out of the palm (fingers flex toward +z).
# name: (MCP position x, y; bone lengths proximal, middle, distal; radius;
#        spread in degrees when extended, + = away from the thumb)
_FINGERS = (
    ("index", 24.0, 88.0, (40.0, 24.0, 19.0), 8.5, -6.0),
    ("middle", 5.0, 92.0, (45.0, 28.0, 21.0), 9.0, 0.0),
    ("ring", -13.0, 87.0, (42.0, 27.0, 21.0), 8.5, 6.0),
    ("pinky", -29.0, 77.0, (33.0, 20.0, 18.0), 7.5, 12.0),
)
_THUMB_CMC = (22.0, 22.0, 6.0)
_THUMB_BONES = (42.0, 32.0, 26.0)
_THUMB_RADIUS = 10.0
_PALM_CENTRE, _PALM_AXES = (-1.0, 48.0, 0.0), (38.0, 46.0, 13.0)
_WRIST = ((0.0, -35.0, 0.0), (0.0, 8.0, 0.0), 22.0)

# Joint limits in degrees (flexion toward the palm is positive).
_MCP_FLEX, _PIP_FLEX, _DIP_RATIO = (-15.0, 90.0), (0.0, 105.0), 0.67
_THUMB_CMC_FLEX, _THUMB_CMC_ABD, _THUMB_MCP, _THUMB_IP = (0.0, 45.0), (10.0, 60.0), (0.0, 55.0), (0.0, 80.0)


@dataclass
class HandBatch:
    """Posed hands in camera coordinates (mm): what the ray caster and the labels need."""

    joints: np.ndarray      # N x 21 x 3
    capsules: np.ndarray    # N x P x 2 x 3 (end points)
    radii: np.ndarray       # N x P
    ellipsoids: np.ndarray  # N x E x 4 x 3 (centre, then the three axes scaled by the semi-axes)
    z_centre: np.ndarray    # N, integer mm: the normalization centre (crop cube centre)
    rotation: np.ndarray    # N x 3 x 3 hand frame -> camera


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _chain(base: np.ndarray, frame: np.ndarray, bones, flex: np.ndarray) -> np.ndarray:
    """Joint positions along one digit: each bone along the frame's +y, bent about its x."""
    points, r = [base], frame
    for k, length in enumerate(bones):
        r = r @ _rot_x(flex[:, k])
        points.append(points[-1] + r[..., :, 1] * length)
    return np.stack(points, 1)  # N x 4 x 3


def _pose_hands(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random articulations in the hand frame: joints, capsules, radii, ellipsoids."""
    rad = np.deg2rad
    grasp = rng.uniform(0.0, 1.0, n)
    joints = [np.zeros((n, 1, 3))]
    capsules, radii = [], []

    # Thumb: the CMC frame starts pointing out between +x and +y, tilted toward the palm.
    cmc = np.broadcast_to(np.asarray(_THUMB_CMC), (n, 3))
    t_c = np.clip(0.7 * grasp + 0.3 * rng.uniform(0, 1, n), 0, 1)
    abd = rad(rng.uniform(*_THUMB_CMC_ABD, n))
    # Twisting the frame about the bone turns flexion across the palm (opposition).
    base = _rot_z(np.full(n, -rad(50.0))) @ _rot_x(0.8 * abd) @ _rot_y(np.full(n, -rad(70.0)))
    flex = rad(np.stack([
        _THUMB_CMC_FLEX[0] + t_c * (_THUMB_CMC_FLEX[1] - _THUMB_CMC_FLEX[0]) + rng.normal(0, 5, n),
        _THUMB_MCP[0] + t_c * (_THUMB_MCP[1] - _THUMB_MCP[0]) + rng.normal(0, 6, n),
        _THUMB_IP[0] + np.clip(t_c + rng.normal(0, 0.15, n), 0, 1) * (_THUMB_IP[1] - _THUMB_IP[0]),
    ], 1))
    thumb = _chain(cmc, base, _THUMB_BONES, flex)
    joints.append(thumb)
    for k in range(3):
        capsules.append(thumb[:, k:k + 2])
        radii.append(np.full(n, _THUMB_RADIUS * (1.15 if k == 0 else 1.0 - 0.08 * k)))

    for _, x, y, bones, radius, spread in _FINGERS:
        c = np.clip(0.6 * grasp + 0.4 * rng.uniform(0, 1, n) + rng.normal(0, 0.08, n), 0, 1)
        mcp_flex = _MCP_FLEX[0] + c * (_MCP_FLEX[1] - _MCP_FLEX[0])
        pip_flex = np.clip(c * _PIP_FLEX[1] + rng.normal(0, 8, n), *_PIP_FLEX)
        dip_flex = _DIP_RATIO * pip_flex + rng.normal(0, 5, n)
        # Extended fingers fan out; a fist pulls them together.
        abduction = (1.0 - c) * (spread + rng.uniform(-8, 8, n))
        frame = _rot_z(rad(abduction))
        mcp = np.broadcast_to(np.asarray([x, y, 0.0]), (n, 3))
        digit = _chain(mcp, frame, bones, rad(np.stack([mcp_flex, pip_flex, dip_flex], 1)))
        joints.append(digit)
        for k in range(3):
            capsules.append(digit[:, k:k + 2])
            radii.append(np.full(n, radius * (1.0 - 0.1 * k)))
        # Metacarpal: gives the palm its row of knuckles.
        capsules.append(np.stack([np.broadcast_to(np.asarray([x * 0.45, 25.0, 0.0]), (n, 3)), mcp], 1))
        radii.append(np.full(n, radius + 1.5))

    capsules.append(np.broadcast_to(np.asarray(_WRIST[:2]), (n, 2, 3)))
    radii.append(np.full(n, _WRIST[2]))
    ellipsoids = np.broadcast_to(
        np.concatenate([np.asarray([_PALM_CENTRE]), np.diag(_PALM_AXES)]), (n, 1, 4, 3))
    return (np.concatenate(joints, 1), np.stack(capsules, 1), np.stack(radii, 1), ellipsoids.copy())


def sample_hands(rng: np.random.Generator, n: int, cube: float = CUBE_MM) -> HandBatch:
    """Random hands posed in front of the camera (random size, rotation and distance)."""
    joints, capsules, radii, ellipsoids = _pose_hands(rng, n)
    scale = rng.uniform(0.85, 1.15, n)
    # Upright palm facing the camera: hand +y -> camera -y (up), hand +z -> camera -z.
    upright = np.diag([1.0, -1.0, -1.0])
    rad = np.deg2rad
    rotation = (_rot_z(rad(rng.uniform(-80, 80, n))) @ _rot_x(rad(rng.uniform(-40, 40, n)))
                @ _rot_y(rng.uniform(-np.pi, np.pi, n)) @ upright)
    centre = joints.mean(1, keepdims=True)
    z_centre = np.round(rng.uniform(*DISTANCE_MM, n))
    # The joints' mean sits near the crop centre, off by a detector-like error of ~1 cm.
    offset = np.concatenate([rng.normal(0, 0.03 * cube, (n, 2)), z_centre[:, None] + rng.normal(0, 10, (n, 1))], 1)

    def place(points: np.ndarray) -> np.ndarray:
        flat = points.reshape(n, -1, 3) - centre
        moved = np.einsum("nij,npj->npi", rotation, flat * scale[:, None, None]) + offset[:, None]
        return moved.reshape(points.shape)

    axes = np.einsum("nij,nej->nei", rotation, ellipsoids[:, :, 1:].reshape(n, -1, 3)).reshape(n, -1, 3, 3)
    ellipsoids = np.concatenate([place(ellipsoids[:, :, :1]), axes * scale[:, None, None, None]], 2)
    return HandBatch(place(joints), place(capsules), radii * scale[:, None], ellipsoids, z_centre, rotation)


def intrinsics(height: int, width: int, z_centre: np.ndarray, cube: float = CUBE_MM) -> tuple[np.ndarray, np.ndarray]:
    """Focal lengths (N x 2: fx, fy) that make the image span ``cube`` mm at ``z_centre``."""
    z = np.asarray(z_centre, dtype=np.float64)
    return np.stack([width * z / cube, height * z / cube], -1), np.asarray([width / 2.0, height / 2.0])


def project(points: np.ndarray, focal: np.ndarray, principal: np.ndarray) -> np.ndarray:
    """Camera points N x K x 3 -> N x K x 2 continuous pixel coordinates (pixel i spans [i, i + 1])."""
    return points[..., :2] / points[..., 2:3] * focal[:, None] + principal


def _rays(height: int, width: int, focal: np.ndarray, principal: np.ndarray) -> np.ndarray:
    """Unit ray directions through pixel centres, N x 3 x HW (float32)."""
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    uv = np.stack([u.ravel(), v.ravel()], 0)  # 2 x HW
    xy = (uv[None] - principal[None, :, None]) / focal[:, :, None]
    d = np.concatenate([xy, np.ones((len(focal), 1, xy.shape[2]))], 1)
    return (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.einsum("ki,ki->k", x, y)


def _capsule_hits(rd: np.ndarray, capsules: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Ray length to the nearest capsule per pixel (inf: miss), B x HW; rays start at the camera.

    Analytic ray-capsule intersection (the swept-sphere form popularized by I. Quilez).
    A bounding-sphere test first keeps the few (ray, capsule) pairs that can hit, so the
    full test runs on those only.
    """
    pa, pb = capsules[:, :, 0].astype(np.float32), capsules[:, :, 1].astype(np.float32)
    radii = radii.astype(np.float32)
    centre = 0.5 * (pa + pb)
    bound = 0.5 * np.linalg.norm(pb - pa, axis=-1) + radii
    along = centre @ rd                 # B x P x HW
    cand = (np.einsum("bpi,bpi->bp", centre, centre)[..., None] - along * along <= (bound * bound)[..., None])
    cand &= (radii > 0)[..., None]      # radius 0 marks an unused slot
    bi, pi, hi = np.nonzero(cand)
    d = rd[bi, :, hi]                   # K x 3
    oa, ob, r2 = -pa[bi, pi], -pb[bi, pi], radii[bi, pi] ** 2
    ba = oa - ob                        # = pb - pa
    baba = _dot(ba, ba)
    bard = _dot(ba, d)
    baoa = _dot(ba, oa)
    rdoa = _dot(d, oa)
    oaoa = _dot(oa, oa)
    a = baba - bard * bard
    b = baba * rdoa - baoa * bard
    h = b * b - a * (baba * oaoa - baoa * baoa - r2 * baba)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(h)) / a
        y = baoa + t * bard
        # Outside the body the hit, if any, is on the end sphere nearer along the axis.
        oc = np.where((y <= 0)[:, None], oa, ob)
        b2 = _dot(d, oc)
        h2 = b2 * b2 - (_dot(oc, oc) - r2)
        t2 = -b2 - np.sqrt(h2)
    t = np.where((y > 0) & (y < baba), t, np.where(h2 > 0, t2, np.inf))
    t[~((h >= 0) & (t > 0))] = np.inf
    out = np.full((rd.shape[0], rd.shape[2]), np.inf, np.float32)
    np.minimum.at(out, (bi, hi), t.astype(np.float32))
    return out


def _ellipsoid_hits(rd: np.ndarray, ellipsoids: np.ndarray) -> np.ndarray:
    """Ray length to the nearest ellipsoid per pixel (inf: miss), B x HW."""
    centre, axes = ellipsoids[:, :, 0], ellipsoids[:, :, 1:]
    # Map into the unit-sphere frame: x' = A^-1 x with A's columns the scaled axes.
    inv = np.linalg.inv(np.swapaxes(axes, -1, -2)).astype(np.float32)  # B x E x 3 x 3
    o = -np.einsum("beij,bej->bei", inv, centre.astype(np.float32))
    d = inv @ rd[:, None]               # B x E x 3 x HW
    a = (d * d).sum(2)
    b = np.einsum("bei,beih->beh", o, d)
    c = (o * o).sum(-1)[..., None] - 1.0
    h = b * b - a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(h)) / a
    t[~((h >= 0) & (t > 0))] = np.inf
    return t.min(1)


def raycast(capsules: np.ndarray, radii: np.ndarray, ellipsoids: np.ndarray, height: int, width: int,
            focal: np.ndarray, principal: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Metric depth maps (z in mm, inf where no surface), N x H x W float32."""
    n = len(capsules)
    chunk = chunk or max(1, int(2_000_000 // (capsules.shape[1] * height * width)))
    out = np.empty((n, height * width), np.float32)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        rd = _rays(height, width, focal[s:e], principal)
        t = _capsule_hits(rd, capsules[s:e], radii[s:e])
        if ellipsoids.shape[1]:
            t = np.minimum(t, _ellipsoid_hits(rd, ellipsoids[s:e]))
        out[s:e] = t * rd[:, 2]         # Kinect-style depth is z, not ray length
    return out.reshape(n, height, width)


def normalize_depth(depth_mm: np.ndarray, z_centre: np.ndarray, cube: float = CUBE_MM) -> np.ndarray:
    """(z - z_c) / (cube / 2), clipped to [-1, 1]; no surface or beyond the cube -> 1 (far)."""
    z_c = np.asarray(z_centre, np.float32).reshape(-1, *([1] * (depth_mm.ndim - 1)))
    d = (depth_mm - z_c) / np.float32(cube / 2.0)
    d[~np.isfinite(d) | (d > 1)] = 1.0
    return np.clip(d, -1.0, 1.0).astype(np.float32)


def joint_labels(hands: HandBatch, height: int, width: int, cube: float = CUBE_MM) -> np.ndarray:
    """N x 21 x 3 (u, v pixels; normalized depth), the ``joints`` label."""
    focal, principal = intrinsics(height, width, hands.z_centre, cube)
    uv = project(hands.joints, focal, principal) - 0.5     # pixel centres at integers
    d = (hands.joints[..., 2] - hands.z_centre[:, None]) / (cube / 2.0)
    return np.concatenate([uv, d[..., None]], -1).astype(np.float32)


def render_hand_depth(n: int, height: int = 64, width: int = 64, seed: int = 0,
                      cube: float = CUBE_MM) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Clean synthetic hand depth maps and their joints; deterministic per ``seed``.

    Returns images float32 N x 1 x H x W in [-1, 1] (background 1 = far) and
    ``{"joints": float32 N x 21 x 3}`` (u, v in pixels, normalized depth).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4A4E44]))
    hands = sample_hands(rng, n, cube)
    focal, principal = intrinsics(height, width, hands.z_centre, cube)
    depth = raycast(hands.capsules, hands.radii, hands.ellipsoids, height, width, focal, principal)
    return normalize_depth(depth, hands.z_centre, cube)[:, None], {"joints": joint_labels(hands, height, width, cube)}
