"""Synthetic handwritten-looking digits: the simulator side of the ``digits`` benchmark.

The paper's real-domain accuracy protocol (Sec. 3.2, Tables 2/3: train a task model on
synthetic, on refined synthetic, and on real images; test on held-out real images) needs
labeled real test data. Real gaze labels are not available offline, so the project
measures that protocol on a stand-in pair: digits rendered from fonts (synthetic, labeled)
vs real MNIST (see :mod:`simgan.data.mnist`).

Rendering, per image (all randomness from ``numpy.random.default_rng([seed, i])``, so
image ``i`` is the same whatever ``n`` is, and a larger set extends a smaller one):

1. One of the serif / sans / italic / bold / typewriter faces that ship inside
   matplotlib (DejaVu, STIX, Computer Modern; the project bundles no font files), drawn
   at 48 pt with a random extra stroke width (PIL ``stroke_width``) for pen thickness.
2. One affine warp: slant (shear, mostly rightward like handwriting), rotation, and
   an aspect-ratio change.
3. MNIST's own normalisation (LeCun et al.): the ink's bounding box is scaled with
   anti-aliasing so its longer side is ~20 px (jittered: size), then the image is placed
   so that its centre of mass sits at the centre of the 28 x 28 frame (plus up to ~1 px of
   translation jitter). Peak intensity is 255, white on black, like MNIST.

What is deliberately *not* modelled (that gap is the refiner's job): pen-pressure
variation along a stroke, stroke endings, the shapes people actually write (open 4s,
crossed 7s, loops in 2s), and MNIST's slight blur.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

# Bump whenever the output of render_digits changes for the same arguments: sources.py
# keys its cache on it, so old rendered stores are not reused by mistake.
RENDER_VERSION = 1

# Faces whose digit glyphs are ordinary Arabic numerals. Left out: the DejaVu Mono faces
# (dotted zero, which reads as an 8 at 28 px), cmmi10 (old-style numerals), and the
# symbol/"Display" fonts (no digit glyphs).
FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf",
)  # fmt: skip
_FONT_PT = 48
_CANVAS = 128  # large enough for any 48 pt glyph after stroke, shear and rotation
_BOX = 20.0  # MNIST: longer side of the ink box, in a 28 px frame


@lru_cache(maxsize=None)
def _font(name: str) -> ImageFont.FreeTypeFont:
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    return ImageFont.truetype(str(path), _FONT_PT)


def _glyph(digit: int, font: str, stroke: int, slant: float, angle: float, aspect: float) -> Image.Image:
    """The warped glyph on a large canvas (white on black)."""
    img = Image.new("L", (_CANVAS, _CANVAS), 0)
    ImageDraw.Draw(img).text((_CANVAS / 2, _CANVAS / 2), str(digit), fill=255, font=_font(font),
                             anchor="mm", stroke_width=stroke, stroke_fill=255)
    # Forward map about the canvas centre: rotate(shear(scale_x(p))). PIL wants the
    # inverse (output pixel -> input pixel), so invert the 2x2 and shift the centre.
    c, s = math.cos(angle), math.sin(angle)
    fwd = np.array([[c, -s], [s, c]]) @ np.array([[1.0, -slant], [0.0, 1.0]]) @ np.diag([aspect, 1.0])
    inv = np.linalg.inv(fwd)
    ctr = np.array([_CANVAS / 2, _CANVAS / 2])
    off = ctr - inv @ ctr
    coeffs = (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1])
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)


def _place(ink: np.ndarray, height: int, width: int, shift: tuple[float, float]) -> np.ndarray:
    """Pastes ``ink`` so its centre of mass lands at the frame centre (+ ``shift``)."""
    frame = np.zeros((height, width), dtype=np.float32)
    total = ink.sum()
    ys, xs = np.indices(ink.shape)
    com_y, com_x = (ys * ink).sum() / total, (xs * ink).sum() / total
    # Pixel centres: the frame centre of a 28 px frame is 13.5 (between pixels 13 and 14).
    top = int(round((height - 1) / 2 - com_y + shift[0]))
    left = int(round((width - 1) / 2 - com_x + shift[1]))
    h, w = ink.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, height), min(left + w, width)
    if y1 > y0 and x1 > x0:
        frame[y0:y1, x0:x1] = ink[y0 - top:y1 - top, x0 - left:x1 - left]
    return frame


def render_digit(i: int, height: int = 28, width: int = 28, seed: int = 0) -> tuple[np.ndarray, int]:
    """Image ``i`` of the stream for ``seed``: (uint8 H x W, digit)."""
    rng = np.random.default_rng([seed, i])
    digit = int(rng.integers(10))
    font = FONT_FILES[int(rng.integers(len(FONT_FILES)))]
    stroke = int(rng.choice([0, 1, 1, 2, 2]))
    slant = float(rng.uniform(-0.15, 0.4))
    angle = math.radians(float(rng.uniform(-12.0, 12.0)))
    aspect = float(rng.uniform(0.75, 1.15))
    box = _BOX * min(height, width) / 28.0 * float(rng.uniform(0.8, 1.05))
    shift = (float(rng.uniform(-1.0, 1.0)), float(rng.uniform(-1.0, 1.0)))

    glyph = _glyph(digit, font, stroke, slant, angle, aspect)
    bbox = glyph.getbbox()
    if bbox is None:  # cannot happen with the fonts above; keep the frame black if it does
        return np.zeros((height, width), np.uint8), digit
    glyph = glyph.crop(bbox)
    gw, gh = glyph.size
    k = box / max(gw, gh)
    # LANCZOS averages over the source footprint: anti-aliased edges like MNIST's.
    glyph = glyph.resize((max(1, round(gw * k)), max(1, round(gh * k))), Image.Resampling.LANCZOS)
    ink = np.asarray(glyph, dtype=np.float32)
    ink = np.clip(ink, 0.0, None)
    ink *= 255.0 / max(float(ink.max()), 1.0)  # MNIST strokes saturate at 255
    frame = _place(ink, height, width, shift)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8), digit


def render_digits(n: int, height: int = 28, width: int = 28, seed: int = 0,
                  start: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Renders ``n`` labeled digits.

    Returns ``(images, {"digit": labels})``: images uint8 ``N x 1 x H x W``, white on black,
    labels int64 ``(N,)`` in 0..9 (the store keeps int64; ``StoreDataset`` hands them out
    as float32 tensors). Deterministic per ``seed`` and prefix-stable in ``n``; ``start``
    renders digits ``start .. start + n - 1`` of that sequence (block-wise rendering).
    Usable as a :class:`~simgan.data.sources.RenderedStore` renderer:
    ``renderer: simgan.data.simulators.digits.render_digits``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    images = np.zeros((n, 1, height, width), dtype=np.uint8)
    digits = np.zeros((n,), dtype=np.int64)
    # ~1 ms per image on one core: the bar only appears for sets that take seconds.
    for i in tqdm(range(n), desc="render digits", unit="img", disable=n < 5000, mininterval=1.0):
        images[i, 0], digits[i] = render_digit(start + i, height, width, seed)
    return images, {"digit": digits}
