"""Talking to the Hugging Face Hub: a check before any work that needs it, and errors that say what to do."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
LOGIN = "log in with `huggingface-cli login` (or set HF_TOKEN)"


class HubError(ValueError):
    """The Hub could not be used: no login, no network, or a refused request; the message says which and what to do."""


def _unreachable(err: Exception) -> bool:
    names = " ".join(type(e).__name__ for e in (err, err.__cause__, err.__context__) if e is not None)
    return any(word in names for word in ("Connect", "Timeout", "Offline", "Network")) or isinstance(err, OSError)


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def hub_call(what: str, call: Callable[[], T]) -> T:
    """``call()``, with the Hub's failures turned into a :class:`HubError` that names the Hub and the fix."""
    try:
        return call()
    except HubError:
        raise
    except Exception as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(f"{what}: the Hub refused the token ({_first_line(err)}); {LOGIN} with a token that may "
                           "write to that repository.") from None
        if _unreachable(err):
            raise HubError(f"{what}: the Hugging Face Hub is not reachable ({_first_line(err)}). Check the network "
                           "(and that HF_HUB_OFFLINE is not set), then try again; the model can be saved locally with "
                           "save_pretrained(folder) and uploaded later with `huggingface-cli upload REPO folder`."
                           ) from None
        raise HubError(f"{what}: the Hub answered with an error ({_first_line(err)}).") from None


def check_hub_access(repo_id: str, token: str | None = None) -> str:
    """Before any work that ends in an upload: a token is there and the Hub accepts it. Returns the user name."""
    from huggingface_hub import HfApi, get_token

    what = f"pushing to the Hub repository {repo_id!r}"
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HubError(f"{what}: a Hub repository id looks like 'namespace/name' (your user name or an organisation, "
                       "then the model's name).")
    token = token or get_token()
    if not token:
        raise HubError(f"{what} needs a login: {LOGIN}. Without one, train or save locally and upload later.")
    return hub_call(what, lambda: HfApi(token=token).whoami()["name"])


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's host answers a TCP connection within ``timeout`` seconds (True behind a proxy, which a
    direct connection cannot judge; False in offline mode)."""
    import os
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError:
        return False
    return True
