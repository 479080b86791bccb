"""An online W&B run must never block: no reachable server or no API key -> offline, at once.

``wandb.init`` in online mode with an API key set and no network was measured to hang
for ~100 s and then fail the run; with no key it asks for one on stdin (which CI does
not have). So before a WandbLogger with ``offline: false`` is created, :func:`go_offline_if_unusable`
checks, in a few seconds at most:

1. an API key exists (``WANDB_API_KEY`` or a ``~/.netrc`` entry for the server, as
   ``wandb login`` writes it), else no login prompt: offline;
2. the server answers HTTP within ``timeout`` seconds (the URL is ``WANDB_BASE_URL``
   or the one wandb's settings name; any HTTP status counts as an answer; refused,
   DNS failure, TLS failure or timeout do not), else offline.

Offline runs are written under the run dir's ``wandb/`` and can be uploaded later with
``wandb sync``. ``WANDB_MODE=offline`` or ``disabled`` in the environment skips the check.
"""

from __future__ import annotations

import logging
import netrc
import os
import threading
import urllib.error
import urllib.request
from urllib.parse import urlparse

from omegaconf import DictConfig, open_dict

log = logging.getLogger("simgan")
DEFAULT_BASE_URL = "https://api.wandb.ai"
PROBE_TIMEOUT_S = 3.0


def base_url() -> str:
    if os.environ.get("WANDB_BASE_URL"):
        return os.environ["WANDB_BASE_URL"]
    try:
        import wandb

        return str(wandb.Settings().base_url)
    except Exception:  # an unreadable settings file must not stop training
        return DEFAULT_BASE_URL


def has_api_key(url: str) -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(urlparse(url).hostname or "") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``url`` answers HTTP within ``timeout`` s (bounded even when DNS hangs)."""
    answer: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            answer.append(True)
        except urllib.error.HTTPError:
            answer.append(True)  # the server answered, if only with an error status
        except Exception:
            answer.append(False)

    # A daemon thread: name resolution ignores the socket timeout and may hang far longer.
    thread = threading.Thread(target=probe, name="simgan-wandb-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


def why_unusable(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why an online W&B run cannot start here, or None when it can."""
    url = base_url()
    if not has_api_key(url):
        return f"no W&B API key for {url} (set WANDB_API_KEY or run `wandb login`)"
    if not reachable(url, timeout):
        return f"W&B server {url} not reachable within {timeout:g} s"
    return None


def _is_wandb_logger(cfg) -> bool:
    return isinstance(cfg, DictConfig) and str(cfg.get("_target_", "")).endswith("WandbLogger")


def go_offline_if_unusable(logger_cfg: DictConfig | None, timeout: float = PROBE_TIMEOUT_S) -> list[str]:
    """Sets ``offline: true`` on online WandbLogger configs that could not start; returns their names."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun", "disabled"):
        return []
    online = [name for name, c in (logger_cfg or {}).items() if _is_wandb_logger(c) and not c.get("offline", False)]
    if not online:
        return []
    reason = why_unusable(timeout)
    if reason is None:
        return []
    for name in online:
        with open_dict(logger_cfg[name]):
            logger_cfg[name].offline = True
            if logger_cfg[name].get("log_model"):
                logger_cfg[name].log_model = False  # cannot upload checkpoints offline
        save_dir = logger_cfg[name].get("save_dir")
        log.warning("%s: logging to W&B OFFLINE instead (under %s/wandb; upload later with `wandb sync`)",
                    reason, save_dir)
    return online
