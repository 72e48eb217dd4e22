"""Serving a simulated CRM: uvicorn in a daemon thread on a bound socket, over HTTP or TLS."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

import uvicorn
from starlette.types import ASGIApp

if TYPE_CHECKING:
    import trustme


class RunningServer:
    """An ASGI app served by uvicorn in a daemon thread; a context manager that stops it."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self.url = url
        self._server = server
        self._thread = thread

    def stop(self) -> None:
        """Stop serving and wait for the server thread to finish."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it, Nagle's algorithm holds the body
    # (sent after the headers) until the client's delayed ACK, 40 ms a request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def start_server(
    app: ASGIApp,
    sock: socket.socket,
    *,
    name: str,
    label: str,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
) -> tuple[uvicorn.Server, threading.Thread]:
    """Run ``app`` on ``sock`` in thread ``name``; returns once it accepts connections."""
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        ssl_certfile=str(ssl_certfile) if ssl_certfile is not None else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile is not None else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"{name}-{bound_port}"
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the simulated {label} did not start")
        time.sleep(0.01)
    return server, thread


class TlsFiles:
    """A server certificate, its key and the CA that signed it, as PEM files in a temp folder."""

    def __init__(self, tls: trustme.CA, host: str) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="iskpi-salesforce-org-")
        folder = Path(self._workdir.name)
        cert = tls.issue_cert(host, "localhost", "127.0.0.1")
        self.cert = folder / "server.pem"
        self.key = folder / "server.key"
        self.ca_bundle = folder / "ca.pem"
        self.cert.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(self.key))
        tls.cert_pem.write_to_path(str(self.ca_bundle))

    def cleanup(self) -> None:
        """Remove the files."""
        self._workdir.cleanup()
