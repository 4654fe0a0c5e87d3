"""The small HTTP server every service runs: ``/metrics``, ``/healthz``, ``/readyz``, plus
routes a service adds (the ticket service's GitHub webhook)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


Route = Callable[[Request], Response]
MAX_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB


@dataclass
class Health:
    """Liveness and readiness as the runtime reports them."""

    live: Callable[[], bool] = lambda: True
    ready: Callable[[], bool] = lambda: True


@dataclass
class HttpServer:
    host: str
    port: int
    registry: CollectorRegistry
    health: Health = field(default_factory=Health)
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> int:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._send(Response(413, b"payload too large\n"))
                    return
                body = self.rfile.read(length) if length else b""
                req = Request(method, path, {k.lower(): v for k, v in self.headers.items()}, body)
                self._send(outer._dispatch(req))

            def _send(self, resp: Response) -> None:
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.content_type)
                self.send_header("Content-Length", str(len(resp.body)))
                self.end_headers()
                self.wfile.write(resp.body)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="http", daemon=True).start()
        self.port = self._server.server_address[1]
        return self.port

    def _dispatch(self, req: Request) -> Response:
        if req.method == "GET" and req.path == "/metrics":
            return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if req.method == "GET" and req.path == "/healthz":
            return Response(200, b"ok\n") if self.health.live() else Response(503, b"stalled\n")
        if req.method == "GET" and req.path == "/readyz":
            return Response(200, b"ready\n") if self.health.ready() else Response(503, b"not ready\n")
        route = self.routes.get((req.method, req.path))
        if route is None:
            return Response(404, b"not found\n")
        try:
            return route(req)
        except Exception:
            log.exception("route failed", extra={"path": req.path})
            return Response(500, b"internal error\n")

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
