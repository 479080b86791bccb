"""W&B never blocks: an online run with no reachable server or no API key goes offline at once.

Without the guard, ``wandb.init`` online with a key set and the server unreachable hangs
for well over 40 s here (~100 s measured) and then fails the run.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time

import pytest

from reliability_helpers import run_dir, tiny_cfg
from simgan.reliability import wandb_guard
from simgan.training import train
from simgan.utils.cli import finish_wandb

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def offline_world(monkeypatch, tmp_path):
    """An API key, no ~/.netrc, and a W&B server URL that refuses connections."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("WANDB_BASE_URL", url)
    return url


def test_online_run_without_server_falls_back_to_offline_in_seconds(offline_world, compose_train, tmp_path, caplog):
    run = run_dir(tmp_path, "wandb")
    cfg = tiny_cfg(compose_train, run, "logger=default", "logger.wandb.offline=false",
                   "model.schedule.adversarial_steps=0")
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="simgan"):
        try:
            train(cfg)
        finally:
            finish_wandb()
    assert time.monotonic() - start < 60
    warning = next(r.getMessage() for r in caplog.records if "OFFLINE" in r.getMessage())
    assert offline_world in warning and "not reachable" in warning and "wandb sync" in warning
    assert list((run / "wandb").glob("offline-run-*")), "no offline W&B run written"
    assert cfg.logger.wandb.offline is True


def test_probe_of_a_closed_port_answers_within_seconds(offline_world):
    start = time.monotonic()
    assert wandb_guard.why_unusable(timeout=3.0) == f"W&B server {offline_world} not reachable within 3 s"
    assert time.monotonic() - start < 4


def test_any_http_answer_counts_as_reachable():
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert wandb_guard.reachable(f"http://127.0.0.1:{server.server_address[1]}", timeout=3.0)
    finally:
        server.shutdown()


def test_no_api_key_means_offline_not_a_login_prompt(monkeypatch, tmp_path, compose_train):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    cfg = compose_train("logger=default", "logger.wandb.offline=false")
    assert wandb_guard.go_offline_if_unusable(cfg.logger) == ["wandb"]
    assert cfg.logger.wandb.offline is True and cfg.logger.csv is not None


def test_offline_env_or_config_skips_the_probe(monkeypatch, compose_train):
    monkeypatch.setattr(wandb_guard, "why_unusable", lambda timeout=0: pytest.fail("probed"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    online = compose_train("logger=default", "logger.wandb.offline=false")
    assert wandb_guard.go_offline_if_unusable(online.logger) == []
    monkeypatch.delenv("WANDB_MODE")
    assert wandb_guard.go_offline_if_unusable(compose_train("logger=default").logger) == []  # offline by default
