"""A local Slack-compatible incoming webhook: a real HTTP server on 127.0.0.1 in a thread.

It keeps every body posted to it and answers with the next status of ``statuses`` (200
once they run out), so a test can make it fail and then recover, or answer too late.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# The path a Slack webhook's secret lives in; a test checks it never leaks.
SECRET_PATH = "/services/T0001/B0001/s3cr3t-webhook-token"


class Receiver:
    """What the webhook received, and how it answers next."""

    def __init__(self, statuses: list[int], delay: float) -> None:
        self.statuses = statuses
        self.delay = delay
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        self.url = ""

    @property
    def texts(self) -> list[str]:
        with self.lock:
            return [str(post["text"]) for post in self.posts]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            time.sleep(receiver.delay)
            with receiver.lock:
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.posts.append(json.loads(body.decode("utf-8")))
                    receiver.paths.append(self.path)
            answer = b"ok" if status == 200 else b"internal_error"
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the test reads what it received

    return Handler


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up before the answer (a timeout test) is no error here


@contextmanager
def webhook_receiver(statuses: list[int] | None = None, delay: float = 0.0) -> Iterator[Receiver]:
    """A receiver on a free port that answers after ``delay`` seconds; bodies answered with a
    status other than 200 are not kept."""
    receiver = Receiver(list(statuses or []), delay)
    server = _Server(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def refused_url() -> str:
    """A webhook URL on a port nothing listens on: the connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET_PATH}"
