"""Page screenshots with headless Chromium, every browser request held to the SSRF guard.

A page may redirect, load images or run scripts that reach for internal addresses. Chromium
therefore talks only to a small forward proxy on 127.0.0.1 that resolves and checks every
host it is asked for (plain requests and CONNECT tunnels alike) and connects to the checked
address. Each capture gets a fresh profile directory and a hard timeout; on timeout the
whole process group is killed.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from services.enrich.guard import Guard, Refused

log = logging.getLogger(__name__)

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--ignore-certificate-errors",  # show what is exposed, trusted or not
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--proxy-bypass-list=<-loopback>",  # even loopback goes through the guard proxy
)
MAX_HEAD = 64 * 1024


class ScreenshotError(Exception):
    """The page could not be captured (timeout, browser failure, no image)."""


@dataclass
class GuardProxy:
    """A forward HTTP proxy that refuses what the guard refuses. One thread per connection."""

    guard: Guard
    io_timeout_s: float = 10.0
    refusals: list[str] = field(default_factory=list)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        if self._sock is None:
            self.start()
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        with self._lock:
            if self._sock is not None:
                return
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            s.settimeout(0.5)
            self._sock = s
            self._thread = threading.Thread(target=self._serve, name="guard-proxy", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._sock is not None:
            self._sock.close()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _refuse(self, conn: socket.socket, host: str, reason: str) -> None:
        with self._lock:
            self.refusals.append(f"{host}: {reason}")
        body = f"refused by the Alertline guard: {reason}\n".encode()
        conn.sendall(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(self.io_timeout_s)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(8192)
                    if not chunk:
                        return
                    head += chunk
                    if len(head) > MAX_HEAD:
                        return
                head, rest = head.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                if method == "CONNECT":
                    host, _, port_s = target.rpartition(":")
                    self._tunnel(conn, host.strip("[]"), int(port_s), None, rest)
                    return
                u = urlsplit(target)
                if u.scheme != "http" or not u.hostname:
                    self._refuse(conn, target[:100], "only http:// URLs and CONNECT are proxied")
                    return
                path = (u.path or "/") + (f"?{u.query}" if u.query else "")
                keep = [
                    ln
                    for ln in lines[1:]
                    if ln.split(":", 1)[0].strip().lower() not in ("proxy-connection", "connection", "keep-alive")
                ]
                # One request per connection: the next request may name another host to check.
                fwd = "\r\n".join([f"{method} {path} {version}", *keep, "Connection: close"]).encode()
                self._tunnel(conn, u.hostname, u.port or 80, fwd + b"\r\n\r\n", rest)
            except (OSError, ValueError) as exc:
                log.debug("proxy connection failed", extra={"error": str(exc)})

    def _tunnel(self, conn: socket.socket, host: str, port: int, request: bytes | None, rest: bytes) -> None:
        try:
            checked = self.guard.check(host)
        except Refused as exc:
            self._refuse(conn, host, exc.reason)
            return
        upstream = socket.create_connection((str(checked.address), port), timeout=self.io_timeout_s)
        with upstream:
            if request is None:
                conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                upstream.sendall(request)
            if rest:
                upstream.sendall(rest)
            _pump(conn, upstream, self.io_timeout_s)


def _pump(a: socket.socket, b: socket.socket, idle_s: float) -> None:
    peers = {a: b, b: a}
    while True:
        ready, _, _ = select.select(list(peers), [], [], idle_s)
        if not ready:
            return
        for s in ready:
            data = s.recv(65536)
            if not data:
                return
            peers[s].sendall(data)


class Chromium:
    """``capture(url) -> PNG bytes`` through the guard proxy; bounded in time and in number."""

    def __init__(
        self,
        proxy: GuardProxy,
        binary: str = "/usr/bin/chromium",
        timeout_s: float = 20.0,
        window: str = "1280,800",
        concurrency: int = 2,
        extra_flags: Sequence[str] = (),
    ) -> None:
        self.proxy = proxy
        self.binary = binary
        self.timeout_s = timeout_s
        self.window = window
        self.extra_flags = tuple(extra_flags)
        self._slots = threading.BoundedSemaphore(max(1, concurrency))

    def capture(self, url: str) -> bytes:
        if not self._slots.acquire(timeout=self.timeout_s * 3):
            raise ScreenshotError("no browser slot free")
        try:
            return self._capture(url)
        finally:
            self._slots.release()

    def _capture(self, url: str) -> bytes:
        work = Path(tempfile.mkdtemp(prefix="alertline-shot-"))
        out = work / "page.png"
        args = [
            self.binary,
            *CHROMIUM_FLAGS,
            *self.extra_flags,
            f"--user-data-dir={work / 'profile'}",
            f"--proxy-server=http://127.0.0.1:{self.proxy.port}",
            f"--window-size={self.window}",
            f"--timeout={int(max(1.0, self.timeout_s - 2) * 1000)}",  # stop loading, still capture
            f"--screenshot={out}",
            url,
        ]
        t0 = time.monotonic()
        try:
            with open(work / "chromium.log", "wb") as logf:
                proc = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True, cwd=work
                )
                try:
                    proc.wait(timeout=self.timeout_s)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    raise ScreenshotError(f"chromium timed out after {self.timeout_s}s") from None
                finally:
                    _kill_group(proc)  # helpers left behind by a browser that exited
            if not out.is_file() or out.stat().st_size == 0:
                tail = (work / "chromium.log").read_bytes()[-300:].decode("utf-8", "replace")
                raise ScreenshotError(f"chromium exited {proc.returncode} without a screenshot: {tail}")
            data = out.read_bytes()
            if not data.startswith(b"\x89PNG\r\n\x1a\n"):
                raise ScreenshotError("chromium wrote something that is not a PNG")
            log.debug("screenshot", extra={"url": url, "bytes": len(data), "seconds": round(time.monotonic() - t0, 2)})
            return data
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log.warning("chromium did not die after SIGKILL", extra={"pid": proc.pid})
