"""An online W&B run must never block: no reachable server or no API key -> offline, at once.

``wandb.init`` in online mode with an API key set and no network was measured to hang
for ~100 s and then fail the run; with no key it asks for one on stdin (which CI does
not have). So before a WandbLogger with ``offline: false`` is created, :func:`go_offline_if_unusable`
checks, in a few seconds at most:

1. an API key exists (``WANDB_API_KEY`` or a ``~/.netrc`` entry for the server, as
   ``wandb login`` writes it), else no login prompt: offline;
2. the server's GraphQL endpoint (``<url>/graphql``, where every wandb client talks;
   the URL is ``WANDB_BASE_URL`` or the one wandb's settings name) answers a trivial
   query within ``timeout`` seconds, else offline. Refused, DNS failure, TLS failure
   and timeout do not count as an answer, and neither does HTTP 404 (something answers,
   but it has no W&B API there: a wrong URL, a proxy's error page; wandb would fail the
   run with ``CommError`` after retries). Any other status (200, 401 for a bad key,
   400/405 from a GraphQL gateway, a 5xx of a server that is there but failing now,
   which wandb retries) counts as an answer.

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


def probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> int | None:
    """The HTTP status ``<url>/graphql`` answers a trivial query with, or None for no answer in ``timeout`` s.

    Bounded even when DNS hangs.
    """
    answer: list[int | None] = []
    request = urllib.request.Request(url.rstrip("/") + "/graphql", data=b'{"query": "{ __typename }"}',
                                     headers={"Content-Type": "application/json"}, method="POST")

    def ask() -> None:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer.append(int(response.status))
        except urllib.error.HTTPError as err:
            answer.append(int(err.code))
        except Exception:
            answer.append(None)

    # A daemon thread: name resolution ignores the socket timeout and may hang far longer.
    thread = threading.Thread(target=ask, name="simgan-wandb-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return answer[0] if answer else None


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a W&B server answers at ``url`` (see the module docstring for what counts)."""
    status = probe(url, timeout)
    return status is not None and status != 404


def why_unusable(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why an online W&B run cannot start here, or None when it can."""
    url = base_url()
    if not has_api_key(url):
        return f"no W&B API key for {url} (set WANDB_API_KEY or run `wandb login`)"
    status = probe(url, timeout)
    if status is None:
        return f"W&B server {url} not reachable within {timeout:g} s"
    if status == 404:
        return f"W&B server {url} answers HTTP 404 at /graphql: no W&B API there (wrong WANDB_BASE_URL?)"
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
