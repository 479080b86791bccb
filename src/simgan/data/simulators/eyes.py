"""Procedural eye simulator: labeled synthetic grayscale eye patches.

SimGAN's gaze experiment (paper Sec. 3.1) refines UnityEyes renders toward MPIIGaze
webcam crops. UnityEyes is a Unity application we cannot ship or run here, so this
module is a small procedural stand-in that plays the same role: it draws clean,
noise-free eyes whose *geometry* is right and known exactly, and leaves the look of a
real camera (skin texture, sensor noise, blur, soft edges) for the refiner to learn.

Each image shows, in eye-local coordinates that are shifted, scaled and slightly
rolled per image (a stand-in for residual head pose after normalisation):

- skin with smooth shading from one lighting direction, a darker eye socket and an
  eyelid crease above the upper lid;
- an almond-shaped opening between an upper and a lower eyelid curve (random
  openness, skew and corner heights; the upper lid follows the gaze pitch a little,
  as real lids do), with a dark lash line and a lid shadow on the eyeball;
- the eyeball: shaded sclera, an iris disc (radial texture, collarette, dark limbus)
  and a pupil, moved by the gaze on the projected eyeball and foreshortened into an
  ellipse when looking away from the camera; all of it clipped by the lids;
- a specular glint (corneal reflection) near the pupil;
- a global brightness / contrast / gamma change.

The geometry ranges (gaze, shift, scale, iris radius, eyeball offset, lid opening) are
matched to the 2,500 real MPIIGaze crops of data/mpiigaze (Zhang et al. CVPR 2015) by
measuring both with one image-based instrument, :mod:`simgan.metrics.eye_geometry`
(``python scripts/eye_geometry.py``; table and histograms in docs/evaluation.md). On
2,500 renders the measured medians are within 2% of the real ones: iris radius 9.2 px
(the iris spans about half the crop height), iris centre (30.2, 15.6) px, lid opening
through the iris 15.5 px, of which 7.4 px above the iris centre and 8.4 px below (the
upper lid covers more of the iris than the lower one). The IQRs are within 20%; the
opening's is the narrowest (1.8 vs 2.3 px: here the two lids vary independently).
Before the matching the irises measured 7.9 px, the openings 13.6 px, and the gaze
spread the iris centres 2.4x (x) and 3.3x (y) wider than in the real crops.

Edges are antialiased but crisp, like a game-engine render: every edge is drawn with
its analytic pixel coverage (from the signed distance) on a grid ``_SUPERSAMPLE``
times finer than the output, which is then box-filtered down; thin features (lashes,
glint) get the supersampling too. Nothing is blurred and no noise is added.

Labels (see :func:`render_eyes`):

- ``gaze``: ``[yaw, pitch]`` in radians, float32. Positive yaw looks toward larger x
  (image right); positive pitch looks up (toward smaller y). Yaw is drawn uniformly
  in +-13 deg, pitch in +-7 deg (eye-in-head gaze as spread as the real crops' iris
  positions).
- ``pupil``: ``[x, y]`` centre of the pupil as drawn (before eyelid occlusion), in
  pixel coordinates of the returned image: x is the column, y the row, and pixel
  centres sit at integer coordinates (so the top-left pixel's centre is (0, 0)).

Everything is seeded: image ``i`` draws its parameters from its own child of
``np.random.SeedSequence(seed)``, and each image is rendered independently of the
others in its batch, so image ``i`` depends only on ``(i, seed, height, width)``,
never on ``n`` or ``batch_size``. 10,000 images at 36 x 60 take about 6-10 s of CPU
time on one core (numpy, float32, 16 images per vectorised step).
"""

from __future__ import annotations

import numpy as np

from simgan.errors import ConfigError

# The eye is designed on a 60 x 36 canvas (MPIIGaze's normalised patch) and scaled to
# the requested size; all lengths below are in pixels of that canvas.
_CANVAS_W, _CANVAS_H = 60.0, 36.0
_SUPERSAMPLE = 2
# Images per vectorised step. Temporaries of about a MB stay in cache and are cheap to
# allocate; a 1024-image step is about 3x slower per image (fresh 100 MB temporaries,
# page-faulted in, on every operation).
_CHUNK = 16

# Bump on any change that alters rendered images: cached renders are keyed by it
# (simgan.data.sources.RenderedStore). 1: geometry matched to the real crops.
RENDER_VERSION = 1

# Gaze relative to the head. The real crops' iris centres spread over an IQR of 3.4 px
# (x) and 1.6 px (y); +-35 / +-25 deg spread the rendered ones 2.4x and 3.3x wider.
_YAW_MAX = np.deg2rad(13.0)
_PITCH_MAX = np.deg2rad(7.0)

# How far the upper and lower lid open per radian of pitch (canvas px). Real upper lids
# rise when looking up and drop when looking down, following the iris (here 0.21 px
# per degree, most of the iris's own 0.24); with half this coupling the measured
# upper-lid-to-iris distance spread wider than in the real crops.
_LID_FOLLOW = (12.0, 3.0)

# One uniform number per entry, per image, in this order. Append new entries at the
# end only: reordering changes every image of every seed.
_PARAM_RANGES: dict[str, tuple[float, float]] = {
    "yaw": (-_YAW_MAX, _YAW_MAX),
    "pitch": (-_PITCH_MAX, _PITCH_MAX),
    # residual head pose: the whole eye moves, scales and rolls (the real crops are
    # aligned on the eye corners, so the shifts are small)
    "shift_x": (0.0, 1.5),
    "shift_y": (-0.25, 0.55),
    "scale": (1.04, 1.16),
    "roll": (-np.deg2rad(8.0), np.deg2rad(8.0)),
    # eyeball and iris: iris_r * scale is 8.2..10.6 px, measured median 9.2 px, as in the
    # real crops (their radii vary little: the crops are normalised for distance)
    "iris_r": (7.9, 9.1),
    "iris_to_ball": (0.48, 0.56),
    "pupil_frac": (0.32, 0.5),
    "ball_dx": (-0.25, 0.25),
    "ball_dy": (0.2, 0.6),
    # eyelid opening above / below the corner line (the real upper lid covers more of
    # the iris than the lower one)
    "half_width": (23.0, 28.0),
    "corner_left": (-2.0, 2.0),
    "corner_right": (-2.0, 2.0),
    "upper_open": (4.3, 6.9),
    "lower_open": (7.4, 9.6),
    "upper_skew": (-0.3, 0.3),
    "lower_skew": (-0.3, 0.3),
    "crease_gap": (3.0, 7.0),
    "crease_depth": (0.1, 0.35),
    "crease_width": (1.0, 2.2),
    "lash_dark": (0.5, 0.9),
    "lash_width": (1.0, 2.2),
    "lower_line_dark": (0.1, 0.4),
    "lid_shadow": (0.1, 0.4),
    "lid_shadow_len": (1.0, 3.0),
    # skin and light
    "skin": (0.6, 0.95),
    "light_angle": (0.0, 2.0 * np.pi),
    "light_grad": (0.0, 0.35),
    "socket_dark": (0.15, 0.45),
    "lid_tone": (-0.08, 0.08),
    # eyeball colours
    "sclera": (0.7, 0.95),
    "sclera_shade": (0.15, 0.4),
    "iris": (0.02, 0.16),
    "iris_tex": (0.05, 0.25),
    "iris_phase_1": (0.0, 2.0 * np.pi),
    "iris_phase_2": (0.0, 2.0 * np.pi),
    "iris_phase_3": (0.0, 2.0 * np.pi),
    "collarette": (0.0, 0.25),
    "limbus": (0.3, 0.8),
    "pupil": (0.0, 0.04),
    # glint: strength (about 1 in 6 images has none), offset from the pupil in iris
    # radii toward the light, size
    "glint": (0.0, 1.0),
    "glint_dist": (0.1, 0.5),
    "glint_jitter": (-0.6, 0.6),
    "glint_sigma": (0.35, 0.7),
    # final tone mapping to uint8
    "black": (0.0, 40.0),
    "white": (205.0, 255.0),
    "gamma": (0.9, 1.4),
    # lashes thicken toward one corner (the outer one, which side depends on the eye)
    "lash_tail": (-0.6, 0.6),
}


def render_eyes(
    n: int, height: int = 36, width: int = 60, seed: int = 0, batch_size: int = 1024, start: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render ``n`` labeled synthetic eyes.

    Returns ``(images, labels)``: images uint8 ``(n, 1, height, width)``; labels
    ``{"gaze": float32 (n, 2) [yaw, pitch] in radians, "pupil": float32 (n, 2) [x, y]
    pupil centre in pixel coordinates of the returned image}`` (x = column, y = row,
    pixel centres at integer coordinates). Positive yaw looks toward larger x,
    positive pitch looks up (toward smaller y).

    Image ``i`` (and its labels) is the same for every ``n > i`` and every
    ``batch_size``; ``start`` renders images ``start .. start + n - 1`` of that same
    sequence, so a large set can be rendered block by block in bounded memory
    (:class:`~simgan.data.sources.RenderedStore`). ``batch_size`` bounds how many images are rendered in one
    vectorised step (memory); steps larger than ``_CHUNK`` are split further, which is
    faster because the temporaries then stay in cache.

    Raises :class:`~simgan.errors.ConfigError` if ``n < 1``, ``height < 16``,
    ``width < 16``, ``seed < 0``, ``batch_size < 1`` or ``start < 0``.
    """
    _check_args(n, height, width, seed, batch_size)
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise ConfigError(f"render_eyes: start must be an integer >= 0, got {start!r}")
    params = _sample_params(n, seed, int(start))
    images = np.empty((n, 1, height, width), np.uint8)
    pupil = np.empty((n, 2), np.float32)
    step = min(batch_size, _CHUNK)
    for start in range(0, n, step):
        batch = {k: v[start : start + step] for k, v in params.items()}
        images[start : start + step], pupil[start : start + step] = _render(batch, height, width)
    gaze = np.stack([params["yaw"], params["pitch"]], axis=1).astype(np.float32)
    return images, {"gaze": gaze, "pupil": pupil}


def _check_args(n: int, height: int, width: int, seed: int, batch_size: int) -> None:
    for name, value, low in (
        ("n", n, 1),
        ("height", height, 16),
        ("width", width, 16),
        ("seed", seed, 0),
        ("batch_size", batch_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"render_eyes: {name} must be an integer, got {value!r}")
        if value < low:
            raise ConfigError(f"render_eyes: {name} must be >= {low}, got {value}")


def _sample_params(n: int, seed: int, start: int = 0) -> dict[str, np.ndarray]:
    """Per-image parameters (float64 arrays of length n) of images start..start+n-1, by name.

    Image i's numbers come from the i-th spawned child of ``SeedSequence(seed)``
    (spawn key ``(i,)``), so they are the same whatever n and start are.
    """
    children = [np.random.SeedSequence(seed, spawn_key=(i,)) for i in range(start, start + n)]
    k = len(_PARAM_RANGES)
    u = np.stack([np.random.Generator(np.random.PCG64(c)).random(k) for c in children])
    return {
        name: lo + (hi - lo) * u[:, j]
        for j, (name, (lo, hi)) in enumerate(_PARAM_RANGES.items())
    }


def _render(params: dict[str, np.ndarray], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one batch from a parameter table (as from :func:`_sample_params`).

    Returns images uint8 (B, 1, height, width) and pupil centres float32 (B, 2).
    Tests call this directly with hand-set parameters (e.g. eyes wide open).
    """
    ss = _SUPERSAMPLE
    p = {k: np.asarray(v, np.float32)[:, None, None] for k, v in params.items()}
    img_scale = min(width / _CANVAS_W, height / _CANVAS_H)
    fine = _eye_frame(p, height, width, img_scale, ss)
    u, v, px = fine["u"], fine["v"], fine["px"]

    gx, gy, fore = _gaze_offset(p)
    ball_x, ball_y = p["ball_dx"], p["ball_dy"]
    iris_x, iris_y = ball_x + gx, ball_y + gy
    pupil = _to_image(fine, iris_x, iris_y)

    upper, lower, t = _eyelids(p, u)
    eye = _sclera(p, u, v, ball_x, ball_y)
    _draw_iris(p, eye, fine, (iris_x, iris_y), (gx, gy, fore), pupil, ss)
    eye *= 1.0 - p["lid_shadow"] * np.exp(-np.maximum(v - upper, 0.0) / p["lid_shadow_len"])
    # A one-subpixel inset makes the opening empty (not a hairline) beyond the corners.
    opening = _coverage(v - upper - px, px) * _coverage(lower - px - v, px)
    lines = _lid_lines(p, v, t, upper, lower)

    # Skin is smooth, so it is evaluated once per output pixel: with skin constant
    # over a block, box(skin * (1 - m) * L + m * eye * L) splits into the two terms.
    coarse = _eye_frame(p, height, width, img_scale, 1)
    c_upper, _, c_t = _eyelids(p, coarse["u"])
    skin = _skin(p, coarse["u"], coarse["v"], coarse["xn"], coarse["yn"], c_t, c_upper)
    skin_weight = _box_downsample((1.0 - opening) * lines, ss)
    img = skin * skin_weight + _box_downsample(opening * eye * lines, ss)

    images = _tone_map(p, img)[:, None]
    return images, np.stack([pupil[0].ravel(), pupil[1].ravel()], axis=1).astype(np.float32)


def drawn_geometry(params: dict[str, np.ndarray], height: int = 36,
                   width: int = 60) -> dict[str, np.ndarray]:
    """The geometry :func:`_render` draws from ``params``, in output pixels (float64, per image).

    ``iris_r``: the iris disc's radius (before foreshortening); ``opening``: lower minus
    upper lid height on the iris centre's column (in the eye's rolled frame, which is
    within 8 deg of vertical); ``upper_lid`` / ``lower_lid``: how far that column's
    upper lid lies above / lower lid below the iris centre. The ground truth for the
    image-based instrument :mod:`simgan.metrics.eye_geometry`, whose iris centre is
    checked against the ``pupil`` label.
    """
    p = {k: np.asarray(v, np.float64)[:, None, None] for k, v in params.items()}
    scale = min(width / _CANVAS_W, height / _CANVAS_H) * p["scale"]
    gx, gy, _ = _gaze_offset(p)
    upper, lower, _ = _eyelids(p, p["ball_dx"] + gx)
    iris_v = p["ball_dy"] + gy
    return {"iris_r": (p["iris_r"] * scale).ravel(), "opening": ((lower - upper) * scale).ravel(),
            "upper_lid": ((iris_v - upper) * scale).ravel(), "lower_lid": ((lower - iris_v) * scale).ravel()}


def _eye_frame(p: dict, height: int, width: int, img_scale: float, ss: int) -> dict:
    """Eye-local canvas coordinates (u right, v down) of every (sub)pixel.

    Subpixel centres are placed in output-pixel units ((k + 0.5) / ss - 0.5), so box
    filtering ss x ss blocks lands exactly on output pixel centres and labels need no
    conversion beyond the similarity transform in :func:`_to_image`.
    """
    xs = ((np.arange(width * ss, dtype=np.float32) + 0.5) / ss - 0.5)[None, None, :]
    ys = ((np.arange(height * ss, dtype=np.float32) + 0.5) / ss - 0.5)[None, :, None]
    # The real crops centre the eye slightly above the middle row.
    cx = (width - 1) / 2 + img_scale * p["shift_x"]
    cy = (height - 1) / 2 + img_scale * (p["shift_y"] - 2.5)
    scale = img_scale * p["scale"]
    dx, dy = xs - cx, ys - cy
    cos_r, sin_r = np.cos(p["roll"]) / scale, np.sin(p["roll"]) / scale
    return {
        "u": cos_r * dx + sin_r * dy,
        "v": cos_r * dy - sin_r * dx,
        "px": 1.0 / (scale * ss),  # one subpixel, in canvas units
        "xn": (xs - (width - 1) / 2) / (width / 2),
        "yn": (ys - (height - 1) / 2) / (width / 2),
        "cx": cx,
        "cy": cy,
        "scale": scale,
        "roll": p["roll"],
    }


def _to_image(frame: dict, u, v) -> tuple[np.ndarray, np.ndarray]:
    """Map eye-local canvas coordinates back to output-image pixel coordinates."""
    cos_r, sin_r = np.cos(frame["roll"]), np.sin(frame["roll"])
    s = frame["scale"]
    return frame["cx"] + s * (cos_r * u - sin_r * v), frame["cy"] + s * (sin_r * u + cos_r * v)


def _coverage(signed_dist: np.ndarray, px) -> np.ndarray:
    """Fraction of a subpixel inside an edge, from its signed distance (positive = in)."""
    return np.clip(signed_dist / px + 0.5, 0.0, 1.0)


def _eyelids(p: dict, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper and lower lid heights v(u), and t = u / half-width.

    Both lids meet on the straight line between the corners; beyond the corners
    (|t| > 1) they coincide, which closes the opening. Mixing a parabola (pointed
    corners) with an ellipse (round middle) gives the almond shape.
    """
    t = u / p["half_width"]
    bulge = np.maximum(1.0 - t * t, 0.0)
    round_ = np.sqrt(bulge)
    corner_line = p["corner_left"] + 0.5 * (t + 1.0) * (p["corner_right"] - p["corner_left"])
    upper_open = p["upper_open"] + _LID_FOLLOW[0] * p["pitch"]
    lower_open = p["lower_open"] - _LID_FOLLOW[1] * p["pitch"]
    upper = corner_line - upper_open * (0.4 * bulge + 0.6 * round_) * (1.0 + p["upper_skew"] * t)
    lower = corner_line + lower_open * (0.6 * bulge + 0.4 * round_) * (1.0 + p["lower_skew"] * t)
    return upper, lower, t


def _gaze_offset(p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projected iris-centre offset from the eyeball centre, and the foreshortening.

    The iris is a disc on the eyeball at distance sqrt(R^2 - r^2) from its centre;
    under an orthographic camera its centre moves by that distance times the sine of
    the gaze angle, and the disc shrinks along the move by cos(yaw) cos(pitch).
    """
    ball_r = p["iris_r"] / p["iris_to_ball"]
    depth = np.sqrt(ball_r**2 - p["iris_r"] ** 2)
    gx = depth * np.sin(p["yaw"]) * np.cos(p["pitch"])
    gy = -depth * np.sin(p["pitch"])
    fore = np.cos(p["yaw"]) * np.cos(p["pitch"])
    return gx, gy, fore


def _sclera(p: dict, u, v, ball_x, ball_y) -> np.ndarray:
    """Eyeball white, darker toward the corners (the ball curves away) and lit from one side."""
    ball_r = p["iris_r"] / p["iris_to_ball"]
    du, dv = (u - ball_x) / ball_r, (v - ball_y) / ball_r
    rho2 = np.minimum(du * du + dv * dv, 1.2)
    light = np.cos(p["light_angle"]) * du + np.sin(p["light_angle"]) * dv
    return p["sclera"] * (1.0 - p["sclera_shade"] * rho2 + 0.08 * light)


def _draw_iris(p: dict, eye, frame: dict, iris_uv, gaze, pupil_xy, ss: int) -> None:
    """Paint iris, pupil and glint into ``eye`` (in place).

    They only cover a small disc, so the work is done in a window around the pupil
    (the same size for the whole batch). Everything drawn has compact support inside
    the window, so the result does not depend on the window's size.
    """
    idx = _window(p, pupil_xy, frame["scale"], eye.shape, ss)
    u_w, v_w, win = frame["u"].take(idx), frame["v"].take(idx), eye.take(idx)
    iris_x, iris_y = iris_uv
    gx, gy, fore = gaze

    # Undo the foreshortening: stretch along the gaze offset direction.
    norm = np.sqrt(gx * gx + gy * gy)
    safe = norm > 1e-6
    ex = np.where(safe, gx / np.where(safe, norm, 1.0), 1.0)
    ey = np.where(safe, gy / np.where(safe, norm, 1.0), 0.0)
    du, dv = u_w - iris_x, v_w - iris_y
    along = (du * ex + dv * ey) / fore
    across = dv * ex - du * ey
    r_px = np.sqrt(along * along + across * across)
    r = r_px / p["iris_r"]

    iris = p["iris"] * (1.0 + _iris_streaks(p, along, across, r_px) + _collarette(p, r))
    iris *= 1.0 - p["limbus"] * np.clip((r - 0.75) / 0.25, 0.0, 1.0) ** 2

    # Edges are measured in the stretched frame; stretch px the same way.
    edge_px = frame["px"] / fore
    win += _coverage(p["iris_r"] - r_px, edge_px) * (iris - win)
    pupil_r = p["pupil_frac"] * p["iris_r"]
    win += _coverage(pupil_r - r_px, edge_px) * (p["pupil"] - win)
    win += _glint(p, u_w, v_w, iris_x, iris_y)
    np.put(eye, idx, win)


def _iris_streaks(p: dict, along, across, r_px) -> np.ndarray:
    """Radial streaks: a sum of cos(k theta + phase) for k = 7, 12, 19.

    Written as Re(c z^k) with z = e^(i theta) from complex multiplies, which is
    several times cheaper than arctan2 followed by cosines.
    """
    z = (along + 1j * across) / np.maximum(r_px, 1e-6)
    z2 = z * z
    z4 = z2 * z2
    z8 = z4 * z4
    weights_phases = ((0.5, "iris_phase_1"), (0.3, "iris_phase_2"), (0.2, "iris_phase_3"))
    c7, c12, c19 = (w * np.exp(1j * p[name]) for w, name in weights_phases)
    streaks = c7 * (z4 * z2 * z) + c12 * (z8 * z4) + c19 * (z8 * z8 * z2 * z)
    return p["iris_tex"] * streaks.real


def _collarette(p: dict, r) -> np.ndarray:
    """The lighter ring around the pupil zone, at 60% of the iris radius."""
    return p["collarette"] * np.exp(-(((r - 0.6) / 0.12) ** 2))


def _window(p: dict, pupil_xy, scale, shape, ss: int) -> np.ndarray:
    """Flat indices (B, wy, wx) of a subpixel window around each pupil, reaching past
    the iris and the glint of every image in the batch."""
    # The iris edge ramp is widened by the foreshortening (see _draw_iris).
    _, _, fore = _gaze_offset(p)
    iris_reach = p["iris_r"] + 0.5 / (scale * ss * fore)
    reach = np.maximum(iris_reach, p["glint_dist"] * p["iris_r"] + 3.0 * p["glint_sigma"])
    half = int(np.ceil(float(np.max(reach * scale)) * ss)) + 2
    n, h, w = shape
    wy, wx = min(2 * half + 1, h), min(2 * half + 1, w)
    cx = np.rint((pupil_xy[0].ravel() + 0.5) * ss - 0.5).astype(np.int64)
    cy = np.rint((pupil_xy[1].ravel() + 0.5) * ss - 0.5).astype(np.int64)
    x0 = np.clip(cx - wx // 2, 0, w - wx)
    y0 = np.clip(cy - wy // 2, 0, h - wy)
    rows = (np.arange(n) * h + y0)[:, None] + np.arange(wy)
    return (rows * w)[:, :, None] + (x0[:, None] + np.arange(wx))[:, None, :]


def _glint(p: dict, u, v, iris_x, iris_y) -> np.ndarray:
    """Corneal reflection: a small bright blob offset from the pupil toward the light.

    A compact bump (zero beyond 3 sigma) rather than a Gaussian, so it ends inside
    the iris window.
    """
    a = p["light_angle"] + p["glint_jitter"]
    cx = iris_x + p["glint_dist"] * p["iris_r"] * np.cos(a)
    cy = iris_y + p["glint_dist"] * p["iris_r"] * np.sin(a)
    # Some renders have no visible glint (light source off-axis).
    strength = np.clip(1.6 * p["glint"] - 0.25, 0.0, 1.0)
    d2 = ((u - cx) ** 2 + (v - cy) ** 2) / (3.0 * p["glint_sigma"]) ** 2
    return strength * np.maximum(1.0 - d2, 0.0) ** 3


def _skin(p: dict, u, v, xn, yn, t, upper) -> np.ndarray:
    """Skin: lit from one side, darker in the socket, a crease above the upper lid."""
    light = 1.0 + p["light_grad"] * (np.cos(p["light_angle"]) * xn + np.sin(p["light_angle"]) * yn)
    socket_h = p["upper_open"] + 5.0
    socket = 1.0 - p["socket_dark"] * np.exp(
        -((u / (1.3 * p["half_width"])) ** 2) - (((v + 2.0) / socket_h) ** 2)
    )
    # The crease follows the upper lid's shape, a few pixels higher and a bit wider.
    tc = t / 1.15
    crease_v = p["corner_left"] + 0.5 * (t + 1.0) * (p["corner_right"] - p["corner_left"])
    crease_v = crease_v - (p["upper_open"] + p["crease_gap"]) * np.maximum(1.0 - tc * tc, 0.0)
    fade = np.clip((1.0 - np.abs(tc)) * 3.0, 0.0, 1.0)
    crease = 1.0 - p["crease_depth"] * fade * np.exp(-(((v - crease_v) / p["crease_width"]) ** 2))
    # The lid skin between crease and lash line has its own tone.
    on_lid = np.clip(v - crease_v, 0.0, 1.0) * np.clip(upper + 1.0 - v, 0.0, 1.0)
    lid = 1.0 + p["lid_tone"] * on_lid * fade
    return p["skin"] * light * socket * crease * lid


def _lid_lines(p: dict, v, t, upper, lower) -> np.ndarray:
    """Multiplicative darkening: lashes along the upper lid, a thin line on the lower one."""
    fade = np.clip((1.0 - np.abs(t)) * 6.0, 0.0, 1.0)
    w = p["lash_width"]
    above = (upper + 0.3 * w) - v  # centred just above the lid edge
    # Normalised so the darkest point stays at lash_dark whatever the tail.
    tail = (1.0 + p["lash_tail"] * t) / (1.0 + np.abs(p["lash_tail"]))
    lash = p["lash_dark"] * tail * np.exp(-((above / w) ** 2))
    below = v - (lower + 0.4)
    lower_line = p["lower_line_dark"] * np.exp(-((below / 0.6) ** 2))
    # Multiplied, not summed: near the corners the two lines overlap.
    return (1.0 - fade * lash) * (1.0 - fade * lower_line)


def _box_downsample(img: np.ndarray, ss: int) -> np.ndarray:
    """Average ss x ss blocks, summing in a fixed order so results don't depend on B."""
    if ss == 1:
        return img
    out = img[:, 0::ss, 0::ss].copy()
    for i in range(ss):
        for j in range(ss):
            if i or j:
                out += img[:, i::ss, j::ss]
    return out * np.float32(1.0 / (ss * ss))


def _tone_map(p: dict, img: np.ndarray) -> np.ndarray:
    """Stretch each image to a random black/white level with a random gamma."""
    lo = img.min(axis=(1, 2), keepdims=True)
    hi = img.max(axis=(1, 2), keepdims=True)
    x = (img - lo) / np.maximum(hi - lo, 1e-6)
    x = x ** p["gamma"]
    out = p["black"] + (p["white"] - p["black"]) * x
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
