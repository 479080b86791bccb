"""Faults of training and refine runs, with real processes, files, signals and a full disk.

Bad settings (types, ranges, a run length the schedule would override), a W&B URL that
answers 404, a store with a damaged chunk or with NaN/inf pixels, SIGTERM / Ctrl-C
during a refine, and a disk that fills up under training and refine: each ends with its
exit status, one line naming the setting or file, and only whole files on disk.
"""

from __future__ import annotations

import http.server
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from reliability_helpers import assert_one_error_line, fill_disk, small_disk, tiny_checkpoint
from simgan.data.store import check_store, write_store
from simgan.errors import ConfigError
from simgan.reliability import wandb_guard
from simgan.validate import check_settings

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
TINY = ["debug=default", "logger=csv", "model.refiner.width=8", "model.refiner.num_blocks=1",
        "model.discriminator.widths=[8,8,8,8]", "model.history_size=16", "data.batch_size=8",
        "model.schedule.refiner_pretrain_steps=1", "model.schedule.discriminator_pretrain_steps=1",
        "model.schedule.adversarial_steps=0", "+trainer.enable_progress_bar=false"]


def run_train(root: Path, *overrides: str, tiny=TINY) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "src" / "train.py"), *tiny, f"paths.log_dir={root}/logs",
                           f"paths.cache_dir={root}/cache", *overrides],
                          capture_output=True, text=True, env=ENV, timeout=300, cwd=root)


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("override, words", [
    ("model.refiner_optimizer.lr=-1", "model.refiner_optimizer.lr must be > 0, got -1"),
    ("model.schedule.k_g=abc", "model.schedule.k_g must be an integer >= 1, got 'abc'"),
    ("+trainer.max_steps=3", "trainer.max_steps=3: the run's length is set by the schedule"),
])
def test_a_bad_setting_is_one_line_at_start_up(tmp_path, override, words):
    result = run_train(tmp_path, "data.synthetic.n=40", "data.real.n=24", override)
    assert result.returncode == 2
    line = assert_one_error_line(result.stderr, words)
    if "max_steps" in override:
        assert "model.schedule.adversarial_steps=0" in line
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())  # nothing rendered


@pytest.mark.parametrize("override, words", [
    ("model.discriminator_optimizer.lr=0", "model.discriminator_optimizer.lr must be > 0, got 0"),
    ("model.schedule.adversarial_steps=2.5", "model.schedule.adversarial_steps must be an integer >= 0, got 2.5"),
    ("model.history_size=-8", "model.history_size must be >= 0, got -8"),
    ("data.batch_size=0", "data.batch_size must be >= 1, got 0"),
    ("++model.ema.decay=1.0", "model.ema.decay must be in [0, 1), got 1.0"),
    ("++model.r1_gamma=-1", "model.r1_gamma must be >= 0, got -1"),
    ("++model.loss=wasserstein", "model.loss must be one of cross_entropy, lsgan, hinge, got 'wasserstein'"),
    ("++model.refiner.padding=circular",
     "model.refiner.padding must be one of zeros, reflect, replicate, got 'circular'"),
    ("++model.discriminator.spectral_norm=maybe",
     "model.discriminator.spectral_norm must be true or false, got 'maybe'"),
])
def test_settings_are_checked_by_name_wherever_they_sit(compose_train, override, words):
    with pytest.raises(ConfigError) as refused:
        check_settings(compose_train("debug=default", override))
    assert words in str(refused.value)


def test_valid_and_unknown_settings_pass(compose_train):
    check_settings(compose_train("debug=default", "++model.some_new_knob=abc", "++model.ema.decay=0.999",
                                 "++model.r1_gamma=0", "++trainer.max_steps=-1"))


# ---------------------------------------------------------------- W&B


def test_a_wandb_url_that_answers_404_means_offline_not_a_crash(monkeypatch, tmp_path, compose_train):
    class NotFound(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            self.send_response(404)
            self.end_headers()

        do_GET = do_POST = do_HEAD = _answer

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)  # local only
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("WANDB_BASE_URL", url)
    try:
        cfg = compose_train("logger=default", "logger.wandb.offline=false")
        start = time.monotonic()
        assert wandb_guard.go_offline_if_unusable(cfg.logger) == ["wandb"]
        assert time.monotonic() - start < 5
        assert cfg.logger.wandb.offline is True
        assert wandb_guard.why_unusable() == f"W&B server {url} answers HTTP 404 at /graphql: no W&B API there " \
                                             "(wrong WANDB_BASE_URL?)"
    finally:
        server.shutdown()


# ---------------------------------------------------------------- damaged stores


def _stores(tmp_path: Path, dtype=np.uint8, n: int = 256) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    if dtype == np.uint8:
        make = lambda: rng.integers(0, 256, (n, 1, 36, 60), dtype=np.uint8)  # noqa: E731
    else:
        make = lambda: rng.uniform(-1, 1, (n, 1, 36, 60)).astype(np.float32)  # noqa: E731
    return write_store(tmp_path / "synthetic.h5", make()), write_store(tmp_path / "real.h5", make())


def _store_overrides(synthetic: Path, real: Path) -> list[str]:
    return ["data=stores", f"data.synthetic.path={synthetic}", f"data.real.path={real}", "data.height=36",
            "data.width=60", "data.synthetic.n=null", "data.real.n=null"]


def _flip_bits_in_chunk(path: Path, chunk: int) -> None:
    with h5py.File(path, "r") as f:
        info = f["images"].id.get_chunk_info(chunk)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + info.size // 2)
        data = bytearray(f.read(16))
        f.seek(info.byte_offset + info.size // 2)
        f.write(bytes(b ^ 0xFF for b in data))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_damaged_chunk_inside_a_store_is_one_line_naming_it(tmp_path, workers):
    synthetic, real = _stores(tmp_path)
    _flip_bits_in_chunk(synthetic, 2)  # the first and last chunk stay whole: check_store passes
    assert check_store(synthetic)["count"] == 256
    result = run_train(tmp_path, *_store_overrides(synthetic, real), f"data.num_workers={workers}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert_one_error_line(result.stderr, str(synthetic), "corrupt store", "convert or render it again")


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_nan_or_inf_pixels_in_a_store_stop_the_run_naming_the_sample(tmp_path, value):
    synthetic, real = _stores(tmp_path, np.float32)
    with h5py.File(synthetic, "r+") as f:  # write_store refuses them: a store damaged afterwards
        f["images"][5, 0, 3, 3] = value
    result = run_train(tmp_path, *_store_overrides(synthetic, real))
    assert result.returncode == 2, result.stderr[-3000:]
    assert_one_error_line(result.stderr, str(synthetic), "sample 5 has NaN or inf pixels")
    assert not list((tmp_path / "logs").glob("**/*.ckpt"))


# ---------------------------------------------------------------- refine: signals, full disk

N = 300  # 5 chunks of 64


@pytest.fixture(scope="module")
def refine_inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("refine")
    rng = np.random.default_rng(0)
    store = write_store(root / "synthetic.h5", rng.integers(0, 256, (N, 1, 36, 60), dtype=np.uint8),
                        {"gaze": rng.normal(size=(N, 2)).astype(np.float32)})
    return tiny_checkpoint(root, store), store


def start_refine(cwd: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "src" / "refine.py"), f"paths.log_dir={cwd}/logs",
                             "trainer=cpu", "num_workers=0", "batch_size=32", "chunk_size=64", "contact_sheet=0",
                             *overrides], env=ENV, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_refine_after_the_chunk_keeping_what_is_done(refine_inputs, tmp_path, signum, code):
    ckpt, store = refine_inputs
    out = tmp_path / "refined.h5"
    parts = tmp_path / "refined.h5.parts"
    proc = start_refine(tmp_path, f"ckpt_path={ckpt}", f"input={store}", f"output={out}", "throttle_s=0.3")
    try:
        deadline = time.monotonic() + 180
        while not list(parts.glob("chunk-*.npz")):
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no chunk was ever written"
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    done = sorted(parts.glob("chunk-*.npz"))
    assert 1 <= len(done) < 5 and not list(parts.glob("*.tmp*")) and not out.exists()
    assert re.search(rf"Refine stopped by {signal.Signals(signum).name}: {len(done)} of 5 chunks are finished", err)
    command = next(line.strip() for line in err.splitlines() if line.strip().startswith("python "))
    assert command.endswith("resume=true") and f"output={out}" in command

    resumed = subprocess.run([sys.executable, *shlex.split(command)[1:]], env=ENV, cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{64 * len(done)} were already done (resumed)" in resumed.stdout
    assert check_store(out)["count"] == N and not parts.exists()


def test_a_full_disk_under_refine_is_one_line_and_keeps_finished_chunks(refine_inputs, tmp_path):
    ckpt, store = refine_inputs
    with small_disk(tmp_path / "disk") as disk:
        fill_disk(disk, (1 << 20) + (300 << 10))  # room for about two chunks beyond the margin
        out = disk / "refined.h5"
        proc = start_refine(tmp_path, f"ckpt_path={ckpt}", f"input={store}", f"output={out}")
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err[-3000:]
        assert_one_error_line(err, "no space left on device", "resume=true", str(disk / "refined.h5.parts"))
        parts = disk / "refined.h5.parts"
        assert not out.exists() and not list(parts.glob("*.tmp*")) and not list(disk.glob(".*.partial"))
        assert list(parts.glob("chunk-*.npz"))  # what was finished is kept for resume=true


def test_a_full_disk_under_training_is_one_line_and_keeps_earlier_checkpoints(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        fill_disk(disk, (1 << 20) + (600 << 10))  # a few checkpoints fit, then the disk is full
        result = subprocess.run(
            [sys.executable, str(ROOT / "src" / "train.py"), *TINY, "data.synthetic.n=40", "data.real.n=24",
             "model.schedule.adversarial_steps=8", "callbacks.model_checkpoint.every_n_train_steps=1",
             "callbacks.model_checkpoint.save_top_k=-1", f"paths.log_dir={disk}/logs",
             f"paths.cache_dir={tmp_path}/cache"],
            capture_output=True, text=True, env=ENV, timeout=300, cwd=tmp_path)
        assert result.returncode == 2, result.stderr[-3000:]
        assert_one_error_line(result.stderr, "no space left on device", ".ckpt")
        saved = list(disk.glob("logs/**/*.ckpt"))
        assert saved, "expected the first checkpoints to fit"
        for path in saved:  # every file there is whole
            torch.load(path, weights_only=True)
        assert not list(disk.glob("logs/**/.*.partial"))
