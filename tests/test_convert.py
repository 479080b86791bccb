"""Converters: each format written by the test itself in its real layout, then converted.

Also the bad inputs every converter must refuse with a DataError naming the file, and
the store checks that catch a truncated or incomplete store at setup.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image, ImageDraw

from simgan.data.convert import FORMATS, folder, unityeyes
from simgan.data.convert.__main__ import main
from simgan.data.store import StoreDataset, check_store, write_store
from simgan.errors import DataError

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def convert(fmt: str, src, dst, **kwargs) -> dict:
    return FORMATS[fmt].convert(str(src), str(dst), **kwargs)


def read(path) -> tuple[np.ndarray, dict, dict]:
    with h5py.File(path, "r") as f:
        return f["images"][:], {k: f["labels"][k][:] for k in f["labels"]}, dict(f.attrs)


def assert_nothing_at(dst: Path) -> None:
    assert not dst.exists()
    assert not dst.with_name(dst.name + ".partial").exists()


# ---------------------------------------------------------------- source writers

def write_kaggle(path: Path, n: int = 5, look_vec: np.ndarray | None = None, labels: bool = True) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 35, 55), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f["image"] = images
        if labels:
            f["look_vec"] = look_vec if look_vec is not None else rng.normal(size=(n, 3)) * [0.3, 0.3, 0.1] - [0, 0, 1]
            f["path"] = np.array([b"a.jpg"] * n)
    return images


def write_unityeyes(folder_: Path, n: int = 3, iris_xy=(90.0, 50.0), img_size=(160, 120), **json_overrides):
    """Renders-like JPGs: light skin, a dark iris disc; JSON in UnityEyes' bottom-up y."""
    folder_.mkdir(parents=True, exist_ok=True)
    w, h = img_size
    eye_c, half_w, half_h = (80.0, 60.0), 40.0, 15.0
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    margin = np.stack([eye_c[0] - half_w * np.cos(t), eye_c[1] + half_h * np.sin(t)], 1)
    iris = np.stack([iris_xy[0] + 10 * np.cos(np.linspace(0, 2 * np.pi, 32, endpoint=False)),
                     iris_xy[1] + 10 * np.sin(np.linspace(0, 2 * np.pi, 32, endpoint=False))], 1)
    for i in range(1, n + 1):
        image = Image.new("RGB", (w, h), (200, 170, 150))
        ix, iy = iris_xy
        ImageDraw.Draw(image).ellipse([ix - 10, iy - 10, ix + 10, iy + 10], fill=(20, 20, 20))
        image.save(folder_ / f"{i}.jpg", quality=95)
        record = {
            "interior_margin_2d": [f"({x:.4f}, {h - y:.4f}, 9.0)" for x, y in margin],
            "iris_2d": [f"({x:.4f}, {h - y:.4f}, 9.0)" for x, y in iris],
            "eye_details": {"look_vec": "(0.5000, 0.0000, -0.8660, 0.0000)", "pupil_size": "0.1"},
            "head_pose": "(0.0, 180.0, 0.0)",
        }
        record.update(json_overrides)
        (folder_ / f"{i}.json").write_text(json.dumps(record))
    return margin, iris


def write_mpiigaze(root: Path, counts=((3, 2), (1, 4))) -> None:
    rng = np.random.default_rng(0)
    for p, (n_left, n_right) in enumerate(counts):
        day = root / f"p{p:02d}"
        day.mkdir(parents=True, exist_ok=True)
        data = {}
        for eye, n in (("left", n_left), ("right", n_right)):
            gaze = np.tile([-0.5, -0.5, -np.sqrt(0.5)], (n, 1))
            data[eye] = {"image": rng.integers(0, 256, (n, 36, 60), dtype=np.uint8), "gaze": gaze,
                         "pose": rng.normal(size=(n, 3)) * 0.1}
        scipy.io.savemat(day / "day01.mat", {"data": data, "filenames": ["a"]})


def depth_png(depth_mm: np.ndarray) -> Image.Image:
    """NYU encoding: depth = G * 256 + B, red unused."""
    d = depth_mm.astype(np.uint16)
    rgb = np.stack([np.zeros_like(d), d >> 8, d & 255], -1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def write_nyu(root: Path, frames: int = 3, prefix: str = "depth", hand_mm: float = 500.0) -> np.ndarray:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    uvd = np.zeros((1, frames, 36, 3))
    for i in range(frames):
        cu, cv = 300.0 + 10 * i, 250.0
        joints = np.stack([cu + rng.uniform(-40, 40, 36), cv + rng.uniform(-40, 40, 36),
                           hand_mm + rng.uniform(-20, 20, 36)], 1)
        joints[:, :2] -= joints[:, :2].mean(0) - [cu, cv]    # mean exactly at (cu, cv)
        uvd[0, i] = joints
        depth = np.full((480, 640), 2000.0)                  # a wall far behind
        yy, xx = np.mgrid[:480, :640]
        depth[(xx - cu) ** 2 + (yy - cv) ** 2 < 45 ** 2] = hand_mm
        depth[:20] = 0                                        # missing rows
        depth_png(depth).save(root / f"{prefix}_1_{i + 1:07d}.png")
    scipy.io.savemat(root / "joint_data.mat", {"joint_uvd": uvd, "joint_xyz": uvd * 0.5,
                                               "joint_names": np.array(["j"] * 36, dtype=object)})
    return uvd[0]


# ---------------------------------------------------------------- formats

def test_kaggle_gaze_labels_and_convention(tmp_path):
    look = np.array([[0.5, 0.0, -np.sqrt(0.75)], [0.0, 0.5, -np.sqrt(0.75)], [0.0, 0.0, -1.0]])
    images = write_kaggle(tmp_path / "gaze.h5", 3, look)
    meta = convert("kaggle-gaze", tmp_path / "gaze.h5", tmp_path / "synth.h5")
    stored, labels, attrs = read(tmp_path / "synth.h5")
    assert meta["count"] == 3 and stored.shape == (3, 1, 35, 55)
    np.testing.assert_array_equal(stored[:, 0], images)
    # yaw > 0 toward larger image x (Unity x right); pitch > 0 up (Unity y up).
    np.testing.assert_allclose(labels["gaze"], np.deg2rad([[30, 0], [0, 30], [0, 0]]), atol=1e-5)
    np.testing.assert_allclose(labels["look_vec"], look, atol=1e-6)
    assert attrs["source_format"] == "kaggle-gaze" and attrs["converter_version"] == "1"
    assert Path(attrs["source_path"]) == (tmp_path / "gaze.h5").resolve()


def test_kaggle_real_has_no_labels_and_resizes(tmp_path):
    write_kaggle(tmp_path / "real_gaze.h5", 4, labels=False)
    meta = convert("kaggle-gaze", tmp_path / "real_gaze.h5", tmp_path / "real.h5", size=(36, 60))
    assert meta["labels"] == {} and meta["shape"] == (1, 36, 60) and meta["dtype"] == np.uint8


def test_unityeyes_crop_pupil_and_gaze(tmp_path):
    iris_xy = (95.0, 52.0)                      # right of and above the eye centre (80, 60)
    write_unityeyes(tmp_path / "imgs", 3, iris_xy=iris_xy)
    meta = convert("unityeyes", tmp_path / "imgs", tmp_path / "ue.h5")
    images, labels, attrs = read(tmp_path / "ue.h5")
    assert meta["count"] == 3 and images.shape == (3, 1, 36, 60)
    # Crop: 1.5 x the 80 px eye width = 120 px wide, 72 px tall, centred on (80, 60).
    scale = 60 / 120.0
    # Pixel centres at integers: continuous coordinate - 0.5.
    expect = [(iris_xy[0] - (80 - 60)) * scale - 0.5, (iris_xy[1] - (60 - 36)) * scale - 0.5]
    np.testing.assert_allclose(labels["pupil"], np.tile(expect, (3, 1)), atol=1e-4)
    # The dark iris disc is where the label says (this checks the bottom-up y flip).
    dark = images[0, 0] < 80
    ys, xs = np.nonzero(dark)
    np.testing.assert_allclose([xs.mean(), ys.mean()], expect, atol=0.6)
    np.testing.assert_allclose(labels["gaze"][0], [np.deg2rad(30), 0], atol=1e-4)   # 4 decimals in the JSON
    assert set(labels) == {"look_vec", "gaze", "pupil"} and attrs["source_format"] == "unityeyes"


def test_unityeyes_eye_near_border_is_padded(tmp_path):
    write_unityeyes(tmp_path / "imgs", 1, img_size=(120, 80))    # crop box leaves the image
    meta = convert("unityeyes", tmp_path / "imgs", tmp_path / "ue.h5", size=(18, 30))
    assert meta["shape"] == (1, 18, 30)


def test_mpiigaze_images_only_and_labels(tmp_path):
    write_mpiigaze(tmp_path / "Normalized")
    meta = convert("mpiigaze", tmp_path / "Normalized", tmp_path / "real.h5")
    assert meta["count"] == 3 + 2 + 1 + 4 and meta["labels"] == {} and meta["shape"] == (1, 36, 60)

    convert("mpiigaze", tmp_path / "Normalized", tmp_path / "lab.h5", labels=True, mirror_right=True)
    _, labels, attrs = read(tmp_path / "lab.h5")
    assert set(labels) == {"look_vec", "gaze", "head_pose", "eye"}
    np.testing.assert_array_equal(labels["eye"], [0, 0, 0, 1, 1, 0, 1, 1, 1, 1])
    # (-0.5, -0.5, -0.707) in the normalized camera (y down): left in the image, up.
    left = labels["eye"] == 0
    np.testing.assert_allclose(labels["gaze"][left], np.tile([np.arctan2(-0.5, np.sqrt(0.5)), np.arcsin(0.5)],
                                                             (left.sum(), 1)), atol=1e-5)
    # Mirrored right eyes look the other way.
    np.testing.assert_allclose(labels["gaze"][~left][:, 0], -labels["gaze"][left][0, 0], atol=1e-5)
    assert attrs["mirror_right"] == 1


def test_nyu_hand_real_and_synthetic(tmp_path):
    uvd = write_nyu(tmp_path / "train", frames=3)
    write_nyu(tmp_path / "train", frames=3, prefix="synthdepth")
    meta = convert("nyu-hand", tmp_path / "train", tmp_path / "real.h5", kind="real", size=(32, 32))
    images, labels, attrs = read(tmp_path / "real.h5")
    assert meta["dtype"] == np.float32 and meta["pixel_range"] == (-1.0, 1.0) and images.shape == (3, 1, 32, 32)
    assert images.min() >= -1 and images.max() <= 1
    z_c = np.round(uvd[:, :, 2].mean(1))
    # The hand disc at 500 mm sits at the crop centre; the wall (2000 mm) is beyond the cube.
    np.testing.assert_allclose(images[:, 0, 16, 16], (500 - z_c) / 150.0, atol=1e-6)
    assert (images[:, 0, 0, 0] == 1).all()
    # Joints: the mean joint maps to the crop centre; depth normalized like the image.
    np.testing.assert_allclose(labels["joints"][:, :, :2].mean(1), 15.5, atol=1e-3)    # between pixels 15 and 16
    np.testing.assert_allclose(labels["joints"][:, :, 2], (uvd[:, :, 2] - z_c[:, None]) / 150.0, atol=1e-5)
    np.testing.assert_array_equal(labels["frame"], [1, 2, 3])
    assert labels["joints_xyz"].shape == (3, 36, 3) and labels["crop"].shape == (3, 5)
    assert attrs["kind"] == "real" and attrs["cube_mm"] == 300.0

    convert("nyu-hand", tmp_path / "train", tmp_path / "synth.h5", kind="synthetic", size=(32, 32), limit=2)
    assert check_store(tmp_path / "synth.h5", ["joints"])["count"] == 2


def test_folder_with_labels_csv(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for i in (1, 2, 10):
        Image.fromarray(np.full((20, 30), i, np.uint8)).save(src / f"img{i}.png")
    (src / "labels.csv").write_text("filename,score,gaze.0,gaze.1\nimg10.png,10,1,2\nimg1.png,1,3,4\nimg2.png,2,5,6\n")
    meta = convert("folder", src, tmp_path / "f.h5")
    images, labels, attrs = read(tmp_path / "f.h5")
    assert meta["shape"] == (1, 20, 30) and meta["dtype"] == np.uint8
    np.testing.assert_array_equal(images[:, 0, 0, 0], [1, 2, 10])          # natural order
    np.testing.assert_array_equal(labels["score"], [1, 2, 10])
    np.testing.assert_array_equal(labels["gaze"], [[3, 4], [5, 6], [1, 2]])
    sample = StoreDataset(tmp_path / "f.h5", labels=["gaze"])[2]
    assert sample["image"].shape == (1, 20, 30) and sample["gaze"].tolist() == [1.0, 2.0]


def test_folder_rgb_and_16bit(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "d16").mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 12, 3), 40 * i, np.uint8)).save(tmp_path / "rgb" / f"{i}.jpg")
        Image.fromarray(np.full((8, 12), 1000 * (i + 1), np.uint16)).save(tmp_path / "d16" / f"{i}.png")
    assert convert("folder", tmp_path / "rgb", tmp_path / "rgb.h5")["shape"] == (3, 8, 12)
    assert convert("folder", tmp_path / "rgb", tmp_path / "g.h5", grayscale=True, size=(4, 6))["shape"] == (1, 4, 6)
    meta = convert("folder", tmp_path / "d16", tmp_path / "d16.h5")
    assert meta["dtype"] == np.uint16 and meta["pixel_range"] == (0.0, 65535.0)
    np.testing.assert_array_equal(read(tmp_path / "d16.h5")[0][:, 0, 0, 0], [1000, 2000])


def test_npz_streams_images_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 10, 12, 3), dtype=np.uint8)
    np.savez_compressed(tmp_path / "a.npz", images=images, y=rng.normal(size=(7, 2)), cls=np.arange(7),
                        note=np.array(3))
    meta = convert("npz", tmp_path / "a.npz", tmp_path / "a.h5")
    stored, labels, _ = read(tmp_path / "a.h5")
    np.testing.assert_array_equal(stored, images.transpose(0, 3, 1, 2))
    assert set(labels) == {"y", "cls"} and labels["y"].dtype == np.float32 and meta["shape"] == (3, 10, 12)

    np.savez(tmp_path / "f.npz", images=rng.uniform(0, 1, (3, 1, 6, 6)))
    meta = convert("npz", tmp_path / "f.npz", tmp_path / "f.h5", pixel_range="0,1")
    assert meta["dtype"] == np.float32 and meta["pixel_range"] == (0.0, 1.0)


# ---------------------------------------------------------------- bad input

def test_missing_sources(tmp_path):
    for fmt, src in [("unityeyes", tmp_path / "nope"), ("kaggle-gaze", tmp_path / "gaze.h5"),
                     ("mpiigaze", tmp_path / "nope"), ("nyu-hand", tmp_path / "nope"),
                     ("folder", tmp_path / "nope"), ("npz", tmp_path / "x.npz")]:
        with pytest.raises(DataError, match="not found") as err:
            convert(fmt, src, tmp_path / "out.h5")
        assert str(src) in str(err.value)
    assert_nothing_at(tmp_path / "out.h5")


def test_unityeyes_image_without_json(tmp_path):
    write_unityeyes(tmp_path / "imgs", 2)
    (tmp_path / "imgs" / "2.json").unlink()
    with pytest.raises(DataError, match=r"2\.json: missing"):
        convert("unityeyes", tmp_path / "imgs", tmp_path / "out.h5")


def test_unityeyes_json_without_look_vec(tmp_path, monkeypatch):
    monkeypatch.setattr(unityeyes, "BATCH", 2)          # the bad file comes after a written batch
    write_unityeyes(tmp_path / "imgs", 3)
    data = json.loads((tmp_path / "imgs" / "3.json").read_text())
    del data["eye_details"]["look_vec"]
    (tmp_path / "imgs" / "3.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"3\.json: no 'look_vec'"):
        convert("unityeyes", tmp_path / "imgs", tmp_path / "out.h5")
    assert_nothing_at(tmp_path / "out.h5")


def test_mat_without_expected_fields(tmp_path):
    (tmp_path / "p00").mkdir()
    scipy.io.savemat(tmp_path / "p00" / "day01.mat", {"data": {"left": {"gaze": np.zeros((2, 3))}}})
    with pytest.raises(DataError, match=r"day01\.mat: no field data\.left\.image"):
        convert("mpiigaze", tmp_path, tmp_path / "out.h5")
    scipy.io.savemat(tmp_path / "p00" / "day01.mat", {"other": np.zeros(3)})
    with pytest.raises(DataError, match=r"day01\.mat: no struct 'data'"):
        convert("mpiigaze", tmp_path, tmp_path / "out.h5")
    write_nyu(tmp_path / "nyu", frames=1)
    scipy.io.savemat(tmp_path / "nyu" / "joint_data.mat", {"joint_xyz": np.zeros((1, 1, 36, 3))})
    with pytest.raises(DataError, match=r"joint_data\.mat: no variable 'joint_uvd'"):
        convert("nyu-hand", tmp_path / "nyu", tmp_path / "out.h5", kind="real")
    assert_nothing_at(tmp_path / "out.h5")


def test_images_of_mixed_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(folder, "BATCH", 2)
    for i, shape in enumerate([(8, 8), (8, 8), (8, 8), (9, 8)]):
        Image.fromarray(np.zeros(shape, np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(DataError, match=r"3\.png: size 9x8, the first image is 8x8"):
        convert("folder", tmp_path, tmp_path / "out" / "f.h5")
    assert_nothing_at(tmp_path / "out" / "f.h5")
    assert convert("folder", tmp_path, tmp_path / "f.h5", size=(8, 8))["count"] == 4


def test_zero_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        convert("folder", tmp_path / "empty", tmp_path / "out.h5")
    np.savez(tmp_path / "e.npz", images=np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(DataError, match="no images found"):
        convert("npz", tmp_path / "e.npz", tmp_path / "out.h5")
    write_unityeyes(tmp_path / "ue", 0)
    with pytest.raises(DataError, match="no images found"):
        convert("unityeyes", tmp_path / "ue", tmp_path / "out.h5")
    assert_nothing_at(tmp_path / "out.h5")


def test_nan_or_inf_in_float_data(tmp_path):
    images = np.zeros((4, 1, 5, 5), np.float32)
    images[2, 0, 1, 1] = np.nan
    np.savez(tmp_path / "n.npz", images=images)
    with pytest.raises(DataError, match=r"n\.npz.*NaN or inf"):
        convert("npz", tmp_path / "n.npz", tmp_path / "out.h5")
    look = np.tile([0.0, 0.0, -1.0], (3, 1))
    look[1, 0] = np.inf
    write_kaggle(tmp_path / "gaze.h5", 3, look)
    with pytest.raises(DataError, match=r"gaze\.h5.*look_vec contains NaN or inf"):
        convert("kaggle-gaze", tmp_path / "gaze.h5", tmp_path / "out.h5")
    assert_nothing_at(tmp_path / "out.h5")


def test_label_count_differs_from_image_count(tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((4, 3, 3), np.uint8), y=np.zeros(3))
    with pytest.raises(DataError, match=r"'y' has 3 rows for 4 images"):
        convert("npz", tmp_path / "a.npz", tmp_path / "out.h5")
    write_kaggle(tmp_path / "gaze.h5", 4, np.tile([0.0, 0.0, -1.0], (5, 1)))
    with pytest.raises(DataError, match=r"'look_vec' has 5 rows for 4 images"):
        convert("kaggle-gaze", tmp_path / "gaze.h5", tmp_path / "out.h5")
    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(src / f"{i}.png")
    (src / "labels.csv").write_text("filename,a\n0.png,1\n1.png,2\n")
    with pytest.raises(DataError, match=r"labels\.csv: 2 label rows for 3 images"):
        convert("folder", src, tmp_path / "out.h5")
    write_nyu(tmp_path / "nyu", frames=2)
    (tmp_path / "nyu" / "depth_1_0000002.png").unlink()
    with pytest.raises(DataError, match="1 depth_1_.*png images but joint_data.mat has 2 frames"):
        convert("nyu-hand", tmp_path / "nyu", tmp_path / "out.h5", kind="real")
    assert_nothing_at(tmp_path / "out.h5")


def test_existing_destination_needs_overwrite(tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((2, 3, 3), np.uint8))
    dst = tmp_path / "a.h5"
    dst.write_bytes(b"keep me")
    with pytest.raises(DataError, match="already exists"):
        convert("npz", tmp_path / "a.npz", dst)
    assert dst.read_bytes() == b"keep me"
    assert convert("npz", tmp_path / "a.npz", dst, overwrite=True)["count"] == 2


def test_cli_subprocess_exit_code_and_one_line_error(tmp_path):
    write_unityeyes(tmp_path / "imgs", 2)
    (tmp_path / "imgs" / "1.json").write_text(json.dumps({"eye_details": {}}))
    dst = tmp_path / "ue.h5"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "simgan.data.convert", "unityeyes", str(tmp_path / "imgs"), str(dst)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "1.json" in lines[0] and "look_vec" in lines[0]
    assert_nothing_at(dst)


def test_cli_main_success_and_overwrite(tmp_path, capsys):
    write_kaggle(tmp_path / "gaze.h5", 3)
    dst = tmp_path / "out.h5"
    assert main(["kaggle-gaze", str(tmp_path / "gaze.h5"), str(dst)]) == 0
    assert "3 images 1x35x55" in capsys.readouterr().out
    assert main(["kaggle-gaze", str(tmp_path / "gaze.h5"), str(dst)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["kaggle-gaze", str(tmp_path / "gaze.h5"), str(dst), "--overwrite", "--size", "18x28"]) == 0
    assert check_store(dst)["shape"] == (1, 18, 28)


# ---------------------------------------------------------------- store checks

def test_truncated_store_fails_at_setup(tmp_path):
    path = tmp_path / "s.h5"
    write_store(path, np.zeros((100, 1, 8, 8), np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(DataError, match=str(path)):
        check_store(path)
    with pytest.raises(DataError, match=str(path)):
        StoreDataset(path)


def test_store_missing_requested_label(tmp_path):
    path = tmp_path / "s.h5"
    write_store(path, np.zeros((4, 1, 8, 8), np.uint8), {"gaze": np.zeros((4, 2), np.float32)})
    with pytest.raises(DataError, match=r"asks for label 'pupil'.*\['gaze'\]"):
        StoreDataset(path, labels=["gaze", "pupil"])


def test_interrupted_store_names_partial(tmp_path):
    (tmp_path / ".s.h5.4242.partial").write_bytes(b"")  # a writer's staging file (simgan.reliability.partials)
    with pytest.raises(DataError, match="a write is running or was interrupted"):
        check_store(tmp_path / "s.h5")
