"""Tests for the procedural eye simulator (simgan.data.simulators.eyes)."""

import numpy as np
import pytest

from simgan.data.simulators import eyes
from simgan.data.simulators.eyes import render_eyes
from simgan.errors import ConfigError


def _open_eyes(n, seed=0, same=False, **overrides):
    """Parameters with the lids wide open and no glint, so the whole pupil shows and
    is the darkest thing in the image. ``same``: every image gets image 0's values."""
    p = eyes._sample_params(n, seed)
    if same:
        p = {k: np.repeat(v[:1], n) for k, v in p.items()}
    fixed = {
        "upper_open": 16.0,
        "lower_open": 14.0,
        "glint": 0.0,
        "pupil": 0.0,
        "iris": 0.5,
        "sclera": 0.9,
        "sclera_shade": 0.15,
        "lid_shadow": 0.1,
        "lash_dark": 0.3,
        "lower_line_dark": 0.1,
        "socket_dark": 0.1,
        "crease_depth": 0.1,
        "black": 0.0,
        "white": 255.0,
    }
    fixed.update(overrides)
    for k, v in fixed.items():
        p[k] = np.broadcast_to(np.asarray(v, np.float64), (n,)).copy()
    return p


def _dark_centroid(images):
    """Centroid (x, y) of the pupil: pixels darker than a fifth of the range, weighted by
    how much darker (so antialiased edge pixels count by their coverage)."""
    img = images[:, 0].astype(np.float64)
    w = np.clip(0.2 * 255 - img, 0.0, None)
    ys, xs = np.mgrid[: img.shape[1], : img.shape[2]]
    total = w.sum(axis=(1, 2))
    assert np.all(total > 0)
    return np.stack([(w * xs).sum(axis=(1, 2)) / total, (w * ys).sum(axis=(1, 2)) / total], 1)


@pytest.mark.parametrize("height,width", [(36, 60), (35, 55)])
def test_shapes_dtypes_and_range(height, width):
    images, labels = render_eyes(64, height=height, width=width, seed=1)
    assert images.shape == (64, 1, height, width) and images.dtype == np.uint8
    assert set(labels) == {"gaze", "pupil"}
    for key in ("gaze", "pupil"):
        assert labels[key].shape == (64, 2) and labels[key].dtype == np.float32
    spread = images.reshape(64, -1).max(1).astype(int) - images.reshape(64, -1).min(1)
    assert spread.min() > 120, "each image should use a good part of 0..255"
    assert images.min() < 40 and images.max() > 215
    assert 80 < images.mean() < 200


def test_gaze_ranges_and_pupil_inside():
    images, labels = render_eyes(500, seed=2)
    yaw, pitch = labels["gaze"].T
    # The ranges match the real crops' spread of iris positions (docs/evaluation.md).
    assert np.abs(yaw).max() <= np.deg2rad(13) + 1e-6 and np.abs(yaw).max() > np.deg2rad(12)
    assert np.abs(pitch).max() <= np.deg2rad(7) + 1e-6 and np.abs(pitch).max() > np.deg2rad(6)
    x, y = labels["pupil"].T
    assert (x > 15).all() and (x < 45).all() and (y > 10).all() and (y < 22).all()
    # Gaze drives the pupil: yaw to the right, pitch up.
    assert np.corrcoef(yaw, x)[0, 1] > 0.6
    assert np.corrcoef(pitch, y)[0, 1] < -0.4


def test_deterministic_and_seed_dependent():
    a, la = render_eyes(20, seed=3)
    b, lb = render_eyes(20, seed=3)
    c, _ = render_eyes(20, seed=4)
    assert np.array_equal(a, b)
    for k in la:
        assert np.array_equal(la[k], lb[k])
    assert not np.array_equal(a, c)


def test_prefix_property():
    small, ls = render_eyes(10, seed=7)
    big, lb = render_eyes(100, seed=7)
    assert np.array_equal(small, big[:10])
    for k in ls:
        assert np.array_equal(ls[k], lb[k][:10])


def test_batch_size_independent():
    ref, lref = render_eyes(45, seed=5, batch_size=1024)
    for bs in (1, 7):
        out, lout = render_eyes(45, seed=5, batch_size=bs)
        assert np.array_equal(out, ref)
        for k in lref:
            assert np.array_equal(lout[k], lref[k])


@pytest.mark.parametrize("height,width", [(36, 60), (35, 55), (72, 120)])
def test_pupil_label_matches_render(height, width):
    params = _open_eyes(40, seed=11)
    images, pupil = eyes._render(params, height, width)
    assert images.shape == (40, 1, height, width)
    err = np.linalg.norm(_dark_centroid(images) - pupil, axis=1)
    # Tolerance in output pixels, scaled with the image (1 px at 36 x 60).
    assert err.max() < max(1.0, height / 36), err.max()


def test_public_api_is_render_of_sampled_params():
    """render_eyes draws exactly what _render draws from _sample_params, so the label
    checks on _render above carry over to render_eyes' output."""
    images, labels = render_eyes(40, seed=13)
    params = eyes._sample_params(40, 13)
    ref, pupil = eyes._render(params, 36, 60)
    assert np.array_equal(images, ref)
    assert np.array_equal(labels["pupil"], pupil)
    gaze = np.stack([params["yaw"], params["pitch"]], 1).astype(np.float32)
    assert np.array_equal(labels["gaze"], gaze)


def test_gaze_sign_conventions():
    yaws = np.deg2rad([-30.0, -15.0, 0.0, 15.0, 30.0])
    params = _open_eyes(5, seed=17, same=True, yaw=yaws, pitch=0.0, roll=0.0)
    images, pupil = eyes._render(params, 36, 60)
    found = _dark_centroid(images)
    assert np.all(np.diff(pupil[:, 0]) > 0.5) and np.all(np.diff(found[:, 0]) > 0.5)

    pitches = np.deg2rad([-20.0, 0.0, 20.0])
    params = _open_eyes(3, seed=17, same=True, yaw=0.0, pitch=pitches, roll=0.0)
    images, pupil = eyes._render(params, 36, 60)
    found = _dark_centroid(images)
    # Positive pitch looks up: smaller y.
    assert np.all(np.diff(pupil[:, 1]) < -0.5) and np.all(np.diff(found[:, 1]) < -0.5)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n": 0}, "n"),
        ({"n": -3}, "n"),
        ({"n": 4, "height": 15}, "height"),
        ({"n": 4, "width": 8}, "width"),
        ({"n": 4, "seed": -1}, "seed"),
        ({"n": 4, "batch_size": 0}, "batch_size"),
        ({"n": 2.5}, "n"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, name):
    with pytest.raises(ConfigError) as info:
        render_eyes(**kwargs)
    msg = str(info.value)
    assert name in msg and str(kwargs[name]) in msg


def test_render_version_keys_the_cache(tmp_path):
    """Cached renders of the earlier geometry (no RENDER_VERSION, read as 0) are not reused."""
    from simgan.data.sources import RenderedStore

    assert eyes.RENDER_VERSION == 1
    store = RenderedStore("simgan.data.simulators.eyes.render_eyes", 4, 36, 60, 0, str(tmp_path))
    assert store._version == eyes.RENDER_VERSION
