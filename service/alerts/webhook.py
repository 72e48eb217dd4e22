"""The POST to a Slack-compatible incoming webhook: ``{"text": ...}`` as UTF-8 JSON.

The URL is a secret (whoever has it can post to the channel), so nothing here logs it and
the error returned never holds it: urllib (unlike httpx) logs no request lines, and an
error's text is scrubbed of the URL and its path. Redirects are not followed: a webhook
answers its POST itself, and a redirect followed as a GET would look delivered.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import IO, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

TIMEOUT_SECONDS = 5.0


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx


_OPENER = urllib.request.build_opener(_NoRedirects)


def _scrubbed(text: str, url: str) -> str:
    path = urlsplit(url).path
    for secret in (url, path if len(path) > 1 else ""):
        if secret:
            text = text.replace(secret, "<webhook>")
    return text


def _first_line(body: IO[bytes] | None, limit: int = 100) -> str:
    """The start of an error answer's body (Slack says why there: ``no_service``, ``invalid_token``)."""
    if body is None:
        return ""
    try:
        text = body.read(1024).decode("utf-8", "replace")
    except OSError:
        return ""
    return text.strip().splitlines()[0][:limit] if text.strip() else ""


def post(url: SecretStr, text: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """Post ``text``; None when the webhook took it (2xx), else what went wrong, without the URL."""
    address = url.get_secret_value()
    request = urllib.request.Request(
        address,
        data=json.dumps({"text": text}, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
        return None
    except urllib.error.HTTPError as exc:
        detail = _first_line(exc.fp)
        error = f"HTTP {exc.code}" + (f": {detail}" if detail else "")
    except urllib.error.URLError as exc:
        reason = exc.reason
        error = (
            f"{type(reason).__name__}: {reason}"
            if isinstance(reason, BaseException)
            else f"URLError: {reason}"
        )
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    except (OSError, http.client.HTTPException) as exc:  # dropped mid-answer, a garbled answer
        error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # anything else: named by its class alone
        error = type(exc).__name__
    return _scrubbed(error, address)
