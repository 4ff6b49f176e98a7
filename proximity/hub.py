"""Hugging Face Hub access: the one place that talks to ``huggingface_hub``.

Errors of the Hub client are mapped onto proximity's (:mod:`proximity.errors`), so that callers
see "not found", "gated" or "unreachable" with a hint, never an HTTP traceback.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit


def split_repo(locator: str) -> tuple[str, str | None]:
    """``'org/name@rev'`` → ``('org/name', 'rev')``."""
    repo, _, rev = locator.partition("@")
    return repo, (rev or None)


_PROBES: dict[str, tuple[bool, float]] = {}
#: How long a failed probe is trusted before the endpoint is probed again (seconds).
PROBE_TTL = 60.0


def _probe(endpoint: str, timeout: float) -> bool:
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint answers a TCP connection.

    False when ``HF_HUB_OFFLINE=1``; True when an HTTP(S) proxy is configured (the proxy is the
    judge then). A success is remembered for the process, a failure for ``PROBE_TTL`` seconds.
    Without this probe an offline machine spends ~45 s of client retries per model.
    """
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    if any(os.environ.get(v)
           for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return True
    known = _PROBES.get(constants.ENDPOINT)
    if known is not None and (known[0] or time.monotonic() - known[1] < PROBE_TTL):
        return known[0]
    ok = _probe(constants.ENDPOINT, timeout)
    _PROBES[constants.ENDPOINT] = (ok, time.monotonic())
    return ok


@contextmanager
def offline_unless_reachable(remote: bool = True) -> Iterator[bool]:
    """Run the block in huggingface_hub's offline mode when the Hub cannot be reached, so that
    cached files load at once and missing ones fail at once. Yields whether the Hub is reachable.

    ``remote=False`` (a local source) neither probes nor changes anything. The offline switch is
    huggingface_hub's process-wide ``constants.HF_HUB_OFFLINE``, restored on exit.
    """
    from huggingface_hub import constants

    if not remote:
        yield True
        return
    reachable = hub_reachable()
    saved = constants.HF_HUB_OFFLINE
    if not reachable:
        constants.HF_HUB_OFFLINE = True
    try:
        yield reachable
    finally:
        constants.HF_HUB_OFFLINE = saved


@contextmanager
def hub_errors(model: str) -> Iterator[None]:
    """Translate huggingface_hub exceptions raised inside the block into proximity errors."""
    from huggingface_hub import errors as hf

    from .errors import GatedModelError, HubUnavailableError, ModelNotFoundError

    try:
        yield
    except hf.GatedRepoError:
        raise GatedModelError(model) from None
    except hf.RepositoryNotFoundError:
        raise ModelNotFoundError(model, "no such repository on the Hub (or it is private: set HF_TOKEN)") from None
    except hf.RevisionNotFoundError:
        raise ModelNotFoundError(model, "the pinned revision does not exist in the repository") from None
    except (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled):
        raise HubUnavailableError(model, "the Hub is unreachable or offline mode is on, and the files are not in "
                                         "the local Hub cache") from None
    except hf.EntryNotFoundError as exc:
        raise ModelNotFoundError(model,
                                 f"a required file is missing from the repository ({exc.__class__.__name__})") from None
    except (OSError, ConnectionError) as exc:
        if exc.__class__.__module__.startswith(("huggingface_hub", "httpx", "requests", "urllib3")):
            raise HubUnavailableError(model, f"{exc.__class__.__name__}: {str(exc)[:200]}") from None
        raise


def download_config(repo_locator: str, revision: str | None = None) -> tuple[dict[str, Any], str]:
    """Fetch ``config.json`` of a Hub repo. Returns (config, commit sha of the snapshot).

    The commit is read from the snapshot folder the file lands in, so it is right both online
    and from the offline cache (``HF_HUB_OFFLINE=1``).
    """
    from huggingface_hub import hf_hub_download

    repo, rev = split_repo(repo_locator)
    with hub_errors(f"hf-hub:{repo_locator}"), offline_unless_reachable():
        path = Path(hf_hub_download(repo, "config.json", revision=revision or rev))
    commit = path.parent.name if path.parent.parent.name == "snapshots" else (revision or rev or "")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh), commit
