"""A small fake of the Confluent Schema Registry REST API (the calls confluent-kafka's Avro
serializers make): register a schema under a subject, look it up by id or subject."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SchemaRegistryFake:
    def __init__(self) -> None:
        self.schemas: list[str] = []  # id = index + 1
        self.subjects: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _register(self, subject: str, schema: str) -> int:
        with self._lock:
            if schema in self.schemas:
                sid = self.schemas.index(schema) + 1
            else:
                self.schemas.append(schema)
                sid = len(self.schemas)
            versions = self.subjects.setdefault(subject, [])
            if sid not in versions:
                versions.append(sid)
            return sid

    def handle(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        self.requests.append(f"{method} {path}")
        path = path.split("?", 1)[0]
        if m := re.fullmatch(r"/subjects/([^/]+)/versions", path):
            if method == "POST" and body:
                return 200, {"id": self._register(m[1], body["schema"])}
            return 200, list(range(1, len(self.subjects.get(m[1], [])) + 1))
        if (m := re.fullmatch(r"/subjects/([^/]+)", path)) and method == "POST" and body:
            sid = self.schemas.index(body["schema"]) + 1 if body["schema"] in self.schemas else None
            if sid is None or sid not in self.subjects.get(m[1], []):
                return 404, {"error_code": 40403, "message": "Schema not found"}
            return 200, {
                "subject": m[1],
                "id": sid,
                "version": self.subjects[m[1]].index(sid) + 1,
                "schema": body["schema"],
            }
        if m := re.fullmatch(r"/subjects/([^/]+)/versions/(latest|\d+)", path):
            versions = self.subjects.get(m[1])
            if not versions:
                return 404, {"error_code": 40401, "message": "Subject not found"}
            v = len(versions) if m[2] == "latest" else int(m[2])
            sid = versions[v - 1]
            return 200, {"subject": m[1], "id": sid, "version": v, "schema": self.schemas[sid - 1]}
        if m := re.fullmatch(r"/schemas/ids/(\d+)", path):
            sid = int(m[1])
            if not 0 < sid <= len(self.schemas):
                return 404, {"error_code": 40403, "message": "Schema not found"}
            return 200, {"schema": self.schemas[sid - 1]}
        return 404, {"error_code": 404, "message": f"not implemented in the fake: {method} {path}"}

    def start(self) -> SchemaRegistryFake:
        outer = self

        class H(BaseHTTPRequestHandler):
            def _do(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                status, out = outer.handle(method, self.path, body)
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._do("GET")

            def do_POST(self) -> None:
                self._do("POST")

            def log_message(self, *a: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
