"""Fast, explicit offline handling for Hugging Face hub names.

Without `HF_HUB_OFFLINE=1`, an offline machine makes `transformers` and `huggingface_hub` retry
for 20-50 s before failing with an unhelpful message. Before any hub call feature-lens checks
(1) whether the files are already in the local cache, then (2) whether `HF_HUB_OFFLINE` is set, then
(3) whether huggingface.co answers within a couple of seconds; if the files are not cached and the
hub cannot be reached, it raises `OfflineError` at once, naming the local-folder alternative.
"""

from __future__ import annotations

import os
import socket
import threading

from feature_lens.errors import OfflineError

HUB_HOST = "huggingface.co"


def hub_offline_flag() -> bool:
    """True when the environment asks for offline mode (`HF_HUB_OFFLINE` or `TRANSFORMERS_OFFLINE`)."""
    values = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(v.strip().lower() in ("1", "true", "yes", "on") for v in values)


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the hub opens within `timeout` seconds (DNS included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((HUB_HOST, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def is_cached(repo_id: str, filename: str) -> bool:
    """Whether `filename` of hub repo `repo_id` is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:
        return False
    return isinstance(found, str)


def ensure_hub_available(repo_id: str, filename: str, *, what: str, local_hint: str) -> bool:
    """Check a hub file can be had; return True if it must come from the cache only.

    Raises `OfflineError` (fast) when the file is not cached and the machine is offline.
    `what` names the thing for the message; `local_hint` says how to load it from a folder instead.
    """
    if is_cached(repo_id, filename):
        return True
    if hub_offline_flag() or not hub_reachable():
        reason = "HF_HUB_OFFLINE is set" if hub_offline_flag() else f"{HUB_HOST} cannot be reached"
        raise OfflineError(
            f"cannot load {what}: this machine is offline ({reason}) and {repo_id!r} is not in the "
            f"local Hugging Face cache. {local_hint}"
        )
    return False
