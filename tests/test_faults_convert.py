"""Faults of a dataset conversion, each with real processes, files and signals.

Two conversions to the same store at once, Ctrl-C / SIGTERM in the middle, ``--overwrite``
onto a folder, a NaN late in the source, a full disk (before HDF5 writes, and inside
HDF5's own write): each ends with its exit status, one line naming the file and nothing
half-written on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from reliability_helpers import assert_one_error_line, fill_disk, small_disk
from simgan.data.store import check_store, write_store
from simgan.reliability import partials

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
N_PNG = 1500  # 6 batches of 256: long enough to act on while it runs


def convert(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "simgan.data.convert", *map(str, args)], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def wait_for_partial(dst: Path, proc: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while not partials.staged(dst):
        assert proc.poll() is None, f"ended before writing ({proc.returncode}): {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "the conversion never started writing"
        time.sleep(0.02)
    return partials.staged(dst)[0][0]


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pngs") / "big"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_PNG):
        Image.fromarray(rng.integers(0, 256, (36, 60), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_a_second_conversion_to_the_same_store_is_refused_and_the_first_completes(pngs, tmp_path):
    dst = tmp_path / "out.h5"
    first = convert("folder", pngs, dst)
    try:
        wait_for_partial(dst, first)
        os.kill(first.pid, signal.SIGSTOP)  # the first is mid-write while the second starts
        try:
            second = subprocess.run([sys.executable, "-m", "simgan.data.convert", "folder", str(pngs), str(dst)],
                                    env=ENV, capture_output=True, text=True, timeout=180)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        _, first_err = first.communicate(timeout=180)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2
    assert_one_error_line(second.stderr, str(dst), f"another process (pid {first.pid}) is writing this store")
    assert first.returncode == 0, first_err[-2000:]
    assert check_store(dst)["count"] == N_PNG
    with h5py.File(dst) as f:  # every chunk decodes (checksums): nothing was emptied under the first
        images = f["images"][:]
    np.testing.assert_array_equal(images[-1, 0], np.asarray(Image.open(pngs / f"{N_PNG - 1}.png")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_conversion_and_removes_the_partial_file(pngs, tmp_path, signum, code):
    dst = tmp_path / "out.h5"
    proc = convert("folder", pngs, dst)
    try:
        wait_for_partial(dst, proc)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]
    assert f"Conversion stopped by {signal.Signals(signum).name}" in err and str(dst) in err
    assert list(tmp_path.iterdir()) == []


def test_overwrite_onto_a_directory_is_refused(pngs, tmp_path):
    folder = tmp_path / "out.h5"
    folder.mkdir()
    proc = subprocess.run([sys.executable, "-m", "simgan.data.convert", "folder", str(pngs), str(folder),
                           "--overwrite", "--limit", "8"], env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, str(folder), "is a directory")
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"] and list(folder.iterdir()) == []


def test_a_late_nan_names_its_row_in_the_source_and_leaves_no_folder(tmp_path):
    images = np.zeros((6000, 8, 8), np.float32)
    images[5500, 3, 3] = np.nan  # in the 6th batch of 1024: row 380 of that batch
    np.savez(tmp_path / "arrays.npz", images=images)
    dst = tmp_path / "new" / "sub" / "out.h5"
    proc = subprocess.run([sys.executable, "-m", "simgan.data.convert", "npz", str(tmp_path / "arrays.npz"),
                           str(dst)], env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, "arrays.npz", "NaN or inf", "first at row 5500")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrays.npz"]  # the folders it made are gone


def _incompressible_npz(path: Path, n: int = 3000) -> Path:
    np.savez(path, images=np.random.default_rng(1).integers(0, 256, (n, 36, 60), dtype=np.uint8))
    return path


def test_a_full_disk_is_one_error_and_the_previous_store_stays(tmp_path):
    source = _incompressible_npz(tmp_path / "arrays.npz")  # 6.5 MB of images for a 2 MiB disk
    with small_disk(tmp_path / "disk") as disk:
        dst = write_store(disk / "out.h5", np.zeros((10, 1, 36, 60), np.uint8))
        proc = subprocess.run([sys.executable, "-m", "simgan.data.convert", "npz", str(source), str(dst),
                               "--overwrite"], env=ENV, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert_one_error_line(proc.stderr, str(dst), "no space left on device", "partial file was removed")
        assert [p.name for p in disk.iterdir()] == ["out.h5"]
        assert check_store(dst)["count"] == 10  # the previous store, whole


def test_a_disk_filled_during_an_hdf5_write_is_one_error_not_a_crash(tmp_path):
    """Another process takes the space between the check and the write: HDF5 itself meets ENOSPC."""
    source = _incompressible_npz(tmp_path / "arrays.npz")
    script = ("import sys; import simgan.reliability.disk as disk; disk.MARGIN_BYTES = -2**40  # check passes\n"
              "from simgan.data.convert.__main__ import main; sys.exit(main(sys.argv[1:]))")
    with small_disk(tmp_path / "disk") as disk:
        dst = disk / "out.h5"
        proc = subprocess.run([sys.executable, "-c", script, "npz", str(source), str(dst)], env=ENV,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])  # was 139 (segfault)
        assert_one_error_line(proc.stderr, str(dst), "no space left on device")
        assert list(disk.iterdir()) == []


def test_a_killed_conversion_leaves_no_partial_for_the_next_one(pngs, tmp_path):
    dst = tmp_path / "out.h5"
    proc = convert("folder", pngs, dst)
    orphan = wait_for_partial(dst, proc)
    proc.kill()  # SIGKILL: no cleanup possible
    proc.communicate()
    assert orphan.exists()
    again = subprocess.run([sys.executable, "-m", "simgan.data.convert", "folder", str(pngs), str(dst),
                            "--limit", "300"], env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_fill_disk_helper_leaves_what_it_says(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        fill_disk(disk, 256 << 10)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        assert 128 << 10 <= free <= 384 << 10
