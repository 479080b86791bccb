"""Tests for the image-based eye geometry instrument (simgan.metrics.eye_geometry).

The truth is the simulator's: its ``pupil`` label (the iris centre) and the geometry
it draws from its parameters (``eyes.drawn_geometry``).
"""

from pathlib import Path

import numpy as np
import pytest

from simgan.data.simulators import eyes
from simgan.metrics.eye_geometry import FIELDS, measure_eyes

REAL = Path(__file__).resolve().parents[1] / "data/mpiigaze/mpiigaze_real_eyes_36x60.npz"


def _measured_vs_drawn(params, height=36, width=60):
    images, pupil = eyes._render(params, height, width)
    found = measure_eyes(images)
    truth = eyes.drawn_geometry(params, height, width)
    ok = found["ok"]
    err = {k: (found[k] - truth[k])[ok] for k in ("iris_r", "opening", "upper_lid", "lower_lid")}
    err["centre"] = np.hypot(found["x"] - pupil[:, 0], found["y"] - pupil[:, 1])[ok]
    return found, err


def _frontal(n, **overrides):
    """Looking straight ahead, no roll or glint, a dark iris: a whole-disc edge on both sides."""
    p = eyes._sample_params(n, 31)
    fixed = {"yaw": 0.0, "pitch": 0.0, "roll": 0.0, "glint": 0.0, "iris": 0.08, **overrides}
    for k, v in fixed.items():
        p[k] = np.full(n, v, np.float64)
    return p


def test_validation_on_rendered_eyes():
    """The renderer's own distribution: the numbers quoted in docs/evaluation.md."""
    found, err = _measured_vs_drawn(eyes._sample_params(400, 21))
    assert found["ok"].mean() >= 0.98
    assert np.median(err["centre"]) < 0.25 and np.percentile(err["centre"], 90) < 0.6
    assert abs(np.median(err["iris_r"])) < 0.3 and np.percentile(np.abs(err["iris_r"]), 90) < 0.6
    assert abs(np.median(err["opening"])) < 0.5 and np.median(np.abs(err["opening"])) < 0.8
    # Lashes darken the lid margin, so the upper lid reads a little high.
    assert 0.0 < np.median(err["upper_lid"]) < 1.2
    assert abs(np.median(err["lower_lid"])) < 0.8


@pytest.mark.parametrize("height,width", [(36, 60), (35, 55), (72, 120)])
def test_frontal_iris_is_exact_at_any_size(height, width):
    _, err = _measured_vs_drawn(_frontal(24), height, width)
    size = max(min(height / 36, width / 60), 1.0)  # tolerances in px at 36 x 60
    assert np.median(err["centre"]) < 0.2 * size and err["centre"].max() < 0.5 * size
    assert np.median(np.abs(err["iris_r"])) < 0.2 * size and np.abs(err["iris_r"]).max() < 0.5 * size


def test_iris_radius_follows_the_drawn_radius():
    small, _ = _measured_vs_drawn(_frontal(16, iris_r=7.5, scale=1.0))
    big, _ = _measured_vs_drawn(_frontal(16, iris_r=9.5, scale=1.0))
    assert np.median(big["iris_r"]) - np.median(small["iris_r"]) == pytest.approx(2.0, abs=0.3)


def test_opening_follows_the_lids_when_they_clip_the_iris():
    p = _frontal(16, upper_open=5.0, lower_open=6.0, scale=1.0, iris_r=9.0, ball_dy=0.0)
    found, err = _measured_vs_drawn(p)
    assert found["ok"].all()
    assert np.median(np.abs(err["opening"])) < 1.0
    wider, _ = _measured_vs_drawn({**p, "lower_open": np.full(16, 7.5)})
    assert np.median(wider["lower_lid"] - found["lower_lid"]) == pytest.approx(1.5, abs=0.5)


def test_blank_image_fails_and_shapes():
    images = np.full((3, 1, 36, 60), 128, np.uint8)
    images[1] = eyes._render(_frontal(1), 36, 60)[0][0]
    found = measure_eyes(images)
    assert set(found) == {*FIELDS, "ok"}
    assert found["ok"].tolist() == [False, True, False]
    assert np.isnan(found["iris_r"][0]) and np.isfinite(found["iris_r"][1])
    assert np.array_equal(measure_eyes(images[:, 0])["x"], found["x"], equal_nan=True)
    with pytest.raises(ValueError):
        measure_eyes(np.zeros((2, 3, 36, 60), np.uint8))
    with pytest.raises(ValueError):
        measure_eyes(np.zeros((36, 60), np.uint8))


@pytest.mark.skipif(not REAL.exists(), reason="real eyes not shipped")
def test_real_eyes_are_measured():
    real = np.load(REAL)["images"][:300]
    found = measure_eyes(real)
    assert found["ok"].mean() >= 0.95
    # The real irises fill about half the crop height.
    assert 8.5 < np.median(found["iris_r"][found["ok"]]) < 10.0


@pytest.mark.skipif(not REAL.exists(), reason="real eyes not shipped")
def test_rendered_geometry_matches_real_crops():
    """The simulator's ranges were matched to the real crops with this instrument."""
    real = measure_eyes(np.load(REAL)["images"][:500])
    synthetic = measure_eyes(eyes.render_eyes(500, seed=3)[0])
    for k in ("x", "y", "iris_r", "opening", "upper_lid", "lower_lid"):
        r, s = (np.median(m[k][m["ok"]]) for m in (real, synthetic))
        assert s == pytest.approx(r, rel=0.05), k
