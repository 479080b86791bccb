"""Refine and export: a trained refiner -> a refined, labeled store.

The checkpoint comes from a real (tiny, 2-step) training run; the store holds random
images and labels of several dtypes. Checks: labels identical and every image equal
to the bare refiner's output for its own index (order kept); a real 2-process DDP run
(`trainer=ddp_sim`, the entry script in a subprocess: `ddp` re-executes the script)
writes each index once; a run killed with SIGKILL resumes to the same file; each bad
input is refused before any work with one message naming the file or setting.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from reliability_helpers import tiny_checkpoint
from simgan.data.store import StoreDataset, check_store, write_store
from simgan.errors import ConfigError, DataError
from simgan.checkpoint import load_refiner, sha256sum
from simgan.export.codec import encode_chunks, image_dataset_options
from simgan.export.predictor import RefinePredictor
from simgan.export.refine import refine

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
N = 300  # 5 chunks of 64 (the last one short): uneven shares for 2 ranks
SHAPE = (1, 36, 60)


def random_store(path: Path, n: int = N, shape=SHAPE, seed: int = 0, **kwargs) -> Path:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = {"gaze": rng.normal(size=(n, 2)).astype(np.float32), "pupil": rng.normal(size=(n, 2)).astype(np.float32),
              "subject": rng.integers(0, 15, size=n).astype(np.int64)}
    return write_store(path, images, labels, attrs={"source_format": "test"}, **kwargs)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return random_store(tmp_path_factory.mktemp("input") / "synthetic.h5")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, store) -> Path:
    """A real Lightning checkpoint of a tiny SimGAN after 2 optimizer steps."""
    return tiny_checkpoint(tmp_path_factory.mktemp("train"), store, SHAPE)


@pytest.fixture
def compose_refine(compose_train):
    return lambda *overrides: compose_train("trainer=cpu", "num_workers=0", "batch_size=32", *overrides,
                                            config_name="refine")


def bare_refined(ckpt: Path, store: Path) -> np.ndarray:
    """What the output must hold: the bare refiner on each input index, quantized."""
    refiner, _ = load_refiner(ckpt, hash_file=False)
    meta = check_store(store)
    predictor = RefinePredictor(refiner, meta["pixel_range"], meta["dtype"])
    with h5py.File(store, "r") as f, torch.inference_mode():
        return np.concatenate([predictor(torch.from_numpy(f["images"][a:a + 32])).numpy()
                               for a in range(0, meta["count"], 32)])


def read(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    with h5py.File(path, "r") as f:
        return f["images"][:], {k: v[:] for k, v in f["labels"].items()}, dict(f.attrs)


# ---------------------------------------------------------------- pieces


def test_chunks_compressed_outside_hdf5_are_the_bytes_hdf5_writes(tmp_path):
    for dtype, shape in [(np.uint8, (1, 36, 60)), (np.uint16, (1, 24, 32)), (np.float32, (3, 8, 8))]:
        x = (np.random.default_rng(0).random((70, *shape)) * 250).astype(dtype)
        options = image_dataset_options(shape, dtype)
        rows = options["chunks"][0]
        blob, offsets = encode_chunks(x, rows)
        with h5py.File(tmp_path / "t.h5", "w") as f:
            direct = f.create_dataset("direct", shape=x.shape, dtype=dtype, **options)
            for k in range(len(offsets) - 1):
                direct.id.write_direct_chunk((k * rows, 0, 0, 0), blob[offsets[k]:offsets[k + 1]].tobytes())
            native = f.create_dataset("native", data=x, **options)
            assert native.id.read_direct_chunk((0, 0, 0, 0))[1] == blob[offsets[0]:offsets[1]].tobytes()
            np.testing.assert_array_equal(direct[:], x)


def test_quantize_back_to_the_input_dtype_and_range():
    identity = torch.nn.Identity()
    x = torch.tensor([-1.0, -0.9, 0.0, 0.5, 1.0])
    as_uint8 = RefinePredictor(identity, (0, 255), np.uint8).quantize(x)
    assert as_uint8.dtype == torch.uint8 and as_uint8.tolist() == [0, 13, 128, 191, 255]
    depth = RefinePredictor(identity, (0, 5000), np.uint16).quantize(x)
    assert depth.tolist() == [0, 250, 2500, 3750, 5000]
    floats = RefinePredictor(identity, (-1, 1), np.float32).quantize(x)
    assert floats.dtype == torch.float32 and torch.equal(floats, x)
    raw = torch.tensor([0, 128, 255], dtype=torch.uint8)  # normalize = StoreDataset's mapping
    normalized = RefinePredictor(identity, (0, 255), np.uint8).normalize(raw)
    assert normalized.tolist() == pytest.approx([-1, 0.00392, 1], abs=1e-4)


def test_load_refiner_needs_only_the_refiner(ckpt, tmp_path):
    """No regularizer/discriminator is built (a VGG weights file of the training machine is
    not needed), and torch.compile's _orig_mod. prefix is accepted."""
    checkpoint = torch.load(ckpt, weights_only=False)
    checkpoint["hyper_parameters"]["regularizer"] = {"_target_": "simgan.regularizers.vgg.VGGFeatures",
                                                     "weights_path": "/only/on/the/training/machine/vgg16.pth"}
    checkpoint["state_dict"] = {k.replace("refiner.", "refiner._orig_mod."): v
                                for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, tmp_path / "compiled.ckpt")
    refiner, info = load_refiner(tmp_path / "compiled.ckpt")
    expected, _ = load_refiner(ckpt)
    assert info["image_shape"] == list(SHAPE) and info["channels"] == 1 and info["global_step"] == 2
    assert info["sha256"] == sha256sum(tmp_path / "compiled.ckpt")
    for a, b in zip(refiner.state_dict().values(), expected.state_dict().values()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- end to end, one process


def test_refine_keeps_labels_and_order_and_records_provenance(ckpt, store, compose_refine, tmp_path, capsys):
    out = tmp_path / "out" / "refined.h5"
    summary = refine(compose_refine(f"ckpt_path={ckpt}", f"input={store}", f"output={out}"))
    images, labels, attrs = read(out)
    src_images, src_labels, src_attrs = read(store)
    assert images.dtype == src_images.dtype and images.shape == src_images.shape
    np.testing.assert_array_equal(images, bare_refined(ckpt, store))  # index i holds R(input i)
    assert not np.array_equal(images, src_images)
    assert labels.keys() == src_labels.keys() == {"gaze", "pupil", "subject"}
    for name in labels:
        assert labels[name].dtype == src_labels[name].dtype
        np.testing.assert_array_equal(labels[name], src_labels[name])
    assert check_store(out, ["gaze", "pupil", "subject"])["count"] == N
    assert StoreDataset(out, ["gaze"])[7]["image"].shape == SHAPE
    assert attrs["count"] == N and list(attrs["pixel_range"]) == [0, 255] and attrs["source_format"] == "test"
    assert attrs["refined_from"] == str(store) and attrs["refiner_checkpoint"] == str(ckpt)
    assert attrs["refiner_checkpoint_sha256"] == sha256sum(ckpt)
    assert f"output: {out}" in attrs["refine_config"] and attrs["refined_at"]
    assert json.loads(attrs["refiner_config"])["_target_"] == "simgan.models.refiner.Refiner"
    assert summary["count"] == summary["refined_now"] == N and summary["resumed"] == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["refined.h5", "refined.h5.png"]  # no leftovers
    printed = capsys.readouterr().out
    assert str(out) in printed and f"Refined {N} of {N} images" in printed


def test_other_image_size_refused_unless_allowed(ckpt, compose_refine, tmp_path):
    other = random_store(tmp_path / "big.h5", n=40, shape=(1, 40, 64))
    out = tmp_path / "refined.h5"
    args = (f"ckpt_path={ckpt}", f"input={other}", f"output={out}", "contact_sheet=0")
    with pytest.raises(DataError, match=r"40x64.*36x60.*allow_size_mismatch=true"):
        refine(compose_refine(*args))
    assert not out.exists()
    refine(compose_refine(*args, "allow_size_mismatch=true"))
    assert read(out)[0].shape == (40, 1, 40, 64)


# ---------------------------------------------------------------- bad input, refused before any work


def _not_simgan(tmp_path: Path) -> Path:
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "hyper_parameters": {"lr": 0.1}}, tmp_path / "x.ckpt")
    return tmp_path / "x.ckpt"


def _other_architecture(tmp_path: Path, ckpt: Path) -> Path:
    checkpoint = torch.load(ckpt, weights_only=False)
    checkpoint["hyper_parameters"]["refiner"]["num_blocks"] = 3  # weights are for 1 block
    torch.save(checkpoint, tmp_path / "arch.ckpt")
    return tmp_path / "arch.ckpt"


def _corrupt(tmp_path: Path, ckpt: Path) -> Path:
    (tmp_path / "cut.ckpt").write_bytes(ckpt.read_bytes()[:2000])
    return tmp_path / "cut.ckpt"


def _no_images(tmp_path: Path) -> Path:
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.attrs.update({"format": "simgan-store", "version": 1, "count": 0})
        f.create_group("labels")
    return tmp_path / "empty.h5"


def _rgb(tmp_path: Path) -> Path:
    return random_store(tmp_path / "rgb.h5", n=8, shape=(3, 36, 60))


def _readonly_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores permissions: use a read-only mount instead
        folder = Path("/sys/fs")
        if os.access("/sys/fs", os.W_OK) and _can_write(folder):
            pytest.skip("no read-only folder available to this user")
    return folder / "refined.h5"


def _leftovers_of_another_checkpoint(tmp_path: Path) -> dict:
    parts = tmp_path / "out" / "refined.h5.parts"
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text(json.dumps({"checkpoint_sha256": "0" * 64, "chunk_size": 64}))
    return {"resume": "true"}


def _existing(tmp_path: Path) -> Path:
    (tmp_path / "x.h5").write_bytes(b"")
    return tmp_path / "x.h5"


def _can_write(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
        (folder / ".probe").unlink()
        return True
    except OSError:
        return False


BAD = {  # case: (settings to change, given tmp_path / checkpoint / store), error, message
    "missing checkpoint": (lambda t, c, s: dict(ckpt_path=t / "nope.ckpt"),
                           DataError, "nope.ckpt: checkpoint file not found"),
    "corrupt checkpoint": (lambda t, c, s: dict(ckpt_path=_corrupt(t, c)),
                           DataError, "cut.ckpt: cannot read checkpoint"),
    "not a SimGAN checkpoint": (lambda t, c, s: dict(ckpt_path=_not_simgan(t)),
                                DataError, "x.ckpt: not a SimGAN checkpoint"),
    "other architecture": (lambda t, c, s: dict(ckpt_path=_other_architecture(t, c)),
                           DataError, "arch.ckpt: refiner weights do not fit the architecture"),
    "missing input": (lambda t, c, s: dict(input=t / "none.h5"), DataError, "none.h5: store file not found"),
    "store without images": (lambda t, c, s: dict(input=_no_images(t)), DataError, "empty.h5: store has no 'images'"),
    "channel mismatch": (lambda t, c, s: dict(input=_rgb(t)), DataError, "rgb.h5: images have 3 channel"),
    "output exists": (lambda t, c, s: dict(output=_existing(t)),
                      DataError, "x.h5: already exists (pass overwrite=true"),
    "output is the input": (lambda t, c, s: dict(output=s), ConfigError, "is the input store"),
    "read-only folder": (lambda t, c, s: dict(output=_readonly_folder(t)),
                         DataError, "destination folder is not writable"),
    "resume another checkpoint's leftovers": (lambda t, c, s: _leftovers_of_another_checkpoint(t),
                                              ConfigError, "cannot resume, the interrupted refine used a different"),
    "no checkpoint given": (lambda t, c, s: dict(ckpt_path="null"), ConfigError, "ckpt_path is required"),
    "bad batch size": (lambda t, c, s: dict(batch_size=0), ConfigError, "batch_size=0"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_before_any_work(case, ckpt, store, compose_refine, tmp_path):
    make, error, message = BAD[case]
    settings = {"ckpt_path": ckpt, "input": store, "output": tmp_path / "out" / "refined.h5"}
    settings.update(make(tmp_path, ckpt, store))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(error) as info:
        refine(compose_refine(*(f"{k}={v}" for k, v in settings.items())))
    assert message in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no output folder made


def test_overwrite_replaces_an_existing_output(ckpt, store, compose_refine, tmp_path):
    out = tmp_path / "refined.h5"
    out.write_bytes(b"old")
    refine(compose_refine(f"ckpt_path={ckpt}", f"input={store}", f"output={out}", "overwrite=true", "contact_sheet=0"))
    assert check_store(out)["count"] == N


def run_refine(tmp_path: Path, *overrides: str, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SIMGAN_ROOT": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "src" / "refine.py"), f"paths.log_dir={tmp_path}/logs",
                             "num_workers=0", *overrides], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_entry_script_prints_one_error_line(ckpt, store, tmp_path, monkeypatch, capsys):
    """src/refine.py as a user runs it (in this process: a subprocess costs ~10 s of imports)."""
    taken = tmp_path / "taken.h5"
    taken.write_bytes(b"")
    monkeypatch.setattr(sys, "argv", ["refine.py", f"ckpt_path={ckpt}", f"input={store}", f"output={taken}",
                                      f"paths.log_dir={tmp_path}/logs", "trainer=cpu"])
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "src" / "refine.py"), run_name="__main__")
    GlobalHydra.instance().clear()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert f"error: {taken}: already exists (pass overwrite=true" in err


# ---------------------------------------------------------------- several processes, interruptions


@pytest.mark.slow
def test_two_ddp_processes_write_every_index_once_in_order(ckpt, store, tmp_path):
    out = tmp_path / "ddp" / "refined.h5"
    proc = run_refine(tmp_path, "trainer=ddp_sim", f"ckpt_path={ckpt}", f"input={store}", f"output={out}",
                      "batch_size=32", "chunk_size=64")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert f"Refined {N} of {N} images" in stdout and "on 2 process(es)" in stdout
    images, labels, _ = read(out)
    np.testing.assert_array_equal(images, bare_refined(ckpt, store))
    np.testing.assert_array_equal(labels["subject"], read(store)[1]["subject"])
    assert not (tmp_path / "ddp" / "refined.h5.parts").exists()
    runs = list((tmp_path / "logs" / "refine" / "runs").iterdir())
    assert len(runs) == 1, f"stray Hydra run dirs: {runs}"


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_file(ckpt, store, compose_refine, tmp_path):
    out = tmp_path / "refined.h5"
    parts = tmp_path / "refined.h5.parts"
    args = (f"ckpt_path={ckpt}", f"input={store}", f"output={out}", "chunk_size=64", "contact_sheet=0")
    proc = run_refine(tmp_path, *args, "batch_size=32", "throttle_s=0.3")
    deadline = time.monotonic() + 120
    while not list(parts.glob("chunk-*.npz")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = sorted(p.name for p in parts.glob("chunk-*.npz"))
    assert 1 <= len(done) < 5, f"kill came too late or never: {done}"
    assert not out.exists()  # nothing that looks complete

    with pytest.raises(ConfigError, match=f"left {len(done)} of 5 chunks; pass resume=true to continue it"):
        refine(compose_refine(*args))  # never starts over silently
    resumed = refine(compose_refine(*args, "resume=true"))
    assert resumed["resumed"] == 64 * len(done) and resumed["refined_now"] == N - 64 * len(done)
    assert not parts.exists()

    fresh = refine(compose_refine(*args[:2], f"output={tmp_path / 'fresh.h5'}", *args[3:]))
    assert fresh["resumed"] == 0
    for a, b in zip(read(out)[:2], read(tmp_path / "fresh.h5")[:2]):
        if isinstance(a, dict):
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        else:
            np.testing.assert_array_equal(a, b)
