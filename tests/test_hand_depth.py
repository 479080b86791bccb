"""The procedural hand-depth simulator and the stand-in sensor domain (paper Sec. 4.3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simgan.data.simulators import depth_sensor, hand_depth
from simgan.data.simulators.depth_sensor import apply_sensor_model, render_sensor_hands
from simgan.data.simulators.hand_depth import (
    CUBE_MM, intrinsics, raycast, render_hand_depth, sample_hands,
)
from simgan.data.sources import RenderedStore
from simgan.data.store import StoreDataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clean():
    return render_hand_depth(96, 48, 48, seed=0)


@pytest.fixture(scope="module")
def sensor():
    return render_sensor_hands(96, 48, 48, seed=0)


def test_shapes_range_and_versions(clean):
    images, labels = clean
    assert images.shape == (96, 1, 48, 48) and images.dtype == np.float32
    assert set(labels) == {"joints"} and labels["joints"].shape == (96, 21, 3) and labels["joints"].dtype == np.float32
    assert images.min() >= -1 and images.max() == 1
    foreground = (images < 1).mean((1, 2, 3))
    assert (foreground > 0.02).all() and (foreground < 0.6).all()     # a hand in every frame, background around it
    assert hand_depth.RENDER_VERSION == 1 and depth_sensor.RENDER_VERSION == 1
    wide, wide_labels = render_hand_depth(2, 24, 40, seed=1)
    assert wide.shape == (2, 1, 24, 40) and wide_labels["joints"].shape == (2, 21, 3)


def test_deterministic_per_seed():
    a, la = render_hand_depth(6, 32, 32, seed=7)
    b, lb = render_hand_depth(6, 32, 32, seed=7)
    c, _ = render_hand_depth(6, 32, 32, seed=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la["joints"], lb["joints"])
    assert not np.array_equal(a, c)
    s1, l1 = render_sensor_hands(4, 32, 32, seed=7)
    s2, _ = render_sensor_hands(4, 32, 32, seed=7)
    np.testing.assert_array_equal(s1, s2)
    assert l1 == {}
    assert not np.array_equal(s1, a[:4])     # its own seed stream, not the clean hands


def test_joints_project_onto_the_rendered_hand(clean):
    images, labels = clean
    u, v, d = np.moveaxis(labels["joints"], -1, 0)
    h, w = images.shape[2:]
    assert ((u >= -0.5) & (u < w - 0.5) & (v >= -0.5) & (v < h - 0.5)).all()      # pixel centres at integers
    assert ((d > -1) & (d < 1)).all()
    # A joint lies inside its bone's capsule: its pixel is hand, at or in front of the joint.
    at = images[np.arange(len(images))[:, None], 0, np.round(v).astype(int), np.round(u).astype(int)]
    visible = (at < 1) & (at <= d + 1e-4)
    assert visible.mean() > 0.99


def test_sensor_model_makes_holes_and_quantizes():
    rng = np.random.default_rng(0)
    hands = sample_hands(rng, 16)
    focal, principal = intrinsics(48, 48, hands.z_centre)
    depth = raycast(hands.capsules, hands.radii, hands.ellipsoids, 48, 48, focal, principal)
    sensed = apply_sensor_model(depth, focal, principal, rng)
    hand = np.isfinite(depth)
    holes = hand & ~np.isfinite(sensed)
    assert holes.sum() > 0.03 * hand.sum()                 # missing pixels where the clean render has a hand
    assert not (~hand & np.isfinite(sensed)).any()          # and nothing appears from nowhere
    kept = sensed[np.isfinite(sensed)]
    np.testing.assert_array_equal(kept, np.round(kept))     # whole millimetres
    assert np.abs(kept - depth[np.isfinite(sensed)]).mean() > 0.1     # noise + quantization moved the depth


def test_stand_in_is_quantized_in_normalized_units(sensor):
    images, _ = sensor
    mm = images[images < 1] * (CUBE_MM / 2)                 # z - z_c with z_c whole millimetres
    np.testing.assert_allclose(mm, np.round(mm), atol=1e-3)


def test_stand_in_differs_statistically(clean, sensor):
    a, b = clean[0][:, 0], sensor[0][:, 0]

    def equal_neighbours(x):                                # plateaus from quantization
        left, right = x[:, :, 1:], x[:, :, :-1]
        both = (left < 1) & (right < 1)
        return ((left == right) & both).sum() / both.sum()

    def holes(x):                                           # background pixels enclosed by foreground
        f = x < 1
        inner = f[:, :-2, 1:-1] & f[:, 2:, 1:-1] & f[:, 1:-1, :-2] & f[:, 1:-1, 2:]
        return (inner & ~f[:, 1:-1, 1:-1]).sum() / f.sum()

    assert equal_neighbours(b) > equal_neighbours(a) + 0.03
    assert holes(b) > 2 * holes(a)
    # Clutter (forearm, table, blobs) covers far more of the frame than a bare hand.
    assert (b < 1).mean() > 2 * (a < 1).mean()


def test_renders_through_rendered_store(tmp_path):
    source = RenderedStore("simgan.data.simulators.hand_depth.render_hand_depth", n=8, height=32, width=32,
                           seed=0, cache_dir=str(tmp_path), name="hands")
    dataset = StoreDataset(source.prepare(), labels=["joints"])
    sample = dataset[3]
    assert sample["image"].shape == (1, 32, 32) and sample["joints"].shape == (21, 3)
    expected, labels = render_hand_depth(8, 32, 32, seed=0)
    np.testing.assert_allclose(sample["image"].numpy(), expected[3], atol=1e-6)   # float stores keep [-1, 1]
    real = RenderedStore("simgan.data.simulators.depth_sensor.render_sensor_hands", n=4, height=32, width=32,
                         seed=0, cache_dir=str(tmp_path), name="sensor_hands")
    assert StoreDataset(real.prepare()).meta["labels"] == {}
