"""The HTTP listener: ``/healthz``, ``/metrics``, ``/status.json`` and the status page.

Starlette + uvicorn, as the fleet side uses them: a maintained HTTP/1.1 parser, TLS and
keep-alive handling we do not want to own, and one stack for operators to know. uvicorn runs
as one supervised service inside the daemon's event loop (no thread, no second process); its
own signal handling is disabled because the supervisor owns SIGTERM/SIGHUP.

The socket is bound on 127.0.0.1 by default. Bound elsewhere, the configuration requires
TLS and basic authentication (gateway.config.model.HealthConfig); credentials are compared
in constant time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.log import get_logger

if TYPE_CHECKING:
    import uvicorn

log = get_logger("pumpgw.health")

RETRY_BIND_S = 30.0


def build_app(
    snapshot: Callable[[], dict],
    metrics_text: Callable[[], bytes],
    *,
    username: str = "",
    password: str = "",
    refresh_s: int = 5,
):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from gateway.health.page import render

    async def healthz(_request: Request) -> Response:
        health = snapshot()["health"]
        return JSONResponse(health, status_code=200 if health["ready"] else 503)

    async def metrics(_request: Request) -> Response:
        return Response(metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def status_json(_request: Request) -> Response:
        return Response(json.dumps(snapshot(), indent=1), media_type="application/json")

    async def page(_request: Request) -> Response:
        return HTMLResponse(render(snapshot(), refresh_s=refresh_s))

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Route("/status.json", status_json),
        ]
    )
    if username:
        return _BasicAuth(app, username, password)
    return app


class _BasicAuth:
    """ASGI middleware: every request needs the configured user and password."""

    def __init__(self, app, username: str, password: str) -> None:
        self.app = app
        self.expected = f"{username}:{password}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not self._ok(scope):
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"www-authenticate", b'Basic realm="pumpgw", charset="UTF-8"'),
                        (b"content-type", b"text/plain"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b"authentication required\n"})
            return
        await self.app(scope, receive, send)

    def _ok(self, scope) -> bool:
        header = dict(scope.get("headers", [])).get(b"authorization", b"")
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self.expected)


class HealthServer:
    """The supervised service: binds, serves until stopped, retries a busy port."""

    def __init__(
        self, app, *, host: str, port: int, cert_file: Path | None = None, key_file: Path | None = None
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.cert_file = cert_file
        self.key_file = key_file
        self.bound_port: int | None = None
        self._server: uvicorn.Server | None = None
        self._stopping = False
        self.listening = asyncio.Event()

    async def run(self) -> None:
        import uvicorn

        from gateway.log import WIRE

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):  # the supervisor owns the signals
                yield

        first_failure = True
        while not self._stopping:
            try:
                sock = _bind(self.host, self.port)
            except OSError as exc:
                if first_failure:
                    log.error(
                        "health listener cannot bind; retrying",
                        listen=self.host,
                        port=self.port,
                        error=exc.strerror or str(exc),
                        retry_s=RETRY_BIND_S,
                    )
                    first_failure = False
                await asyncio.sleep(RETRY_BIND_S)
                continue
            self.bound_port = sock.getsockname()[1]
            config = uvicorn.Config(
                self.app,
                log_config=None,
                access_log=False,
                lifespan="off",
                log_level="warning",
                ssl_certfile=str(self.cert_file) if self.cert_file else None,
                ssl_keyfile=str(self.key_file) if self.key_file else None,
            )
            logging.addLevelName(WIRE, "WIRE")  # uvicorn.Config names level 5 "TRACE"; ours is WIRE
            self._server = _Server(config)
            scheme = "https" if self.cert_file else "http"
            log.info("health listener open", url=f"{scheme}://{_url_host(self.host)}:{self.bound_port}/")
            self.listening.set()
            try:
                await self._server.serve(sockets=[sock])
            finally:
                sock.close()
            return

    def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
