"""The prober's SSRF guard against DNS rebinding and address tricks, end to end: real sockets on
127.0.0.x stand for "the public address" (127.0.0.2, opened by an exact allow-list entry) and
"the private address" (127.0.0.1, refused like any loopback). A listener on the private address
counts connections: it must see none. The guard's unit cases are in tests/unit/enrich/test_guard.py.
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.enrich.guard import Guard, Refused, system_resolver
from services.enrich.probe import ProbeConfig, Prober, Target, parse_target
from services.enrich.screenshot import GuardProxy

PUBLIC, PRIVATE = "127.0.0.2", "127.0.0.1"
ALLOW_PUBLIC = [f"{PUBLIC}/32"]
FAST = ProbeConfig(
    connect_timeout_s=1.0, read_timeout_s=2.0, banner_wait_s=0.2, probe_timeout_s=10, per_target_delay_s=0
)


@dataclass
class Rebinding:
    """A resolver that answers the public address first and the private one ever after."""

    name: str = "rebind.example"
    calls: list[str] = field(default_factory=list)

    def __call__(self, host: str) -> list[str]:
        self.calls.append(host)
        if host != self.name:
            raise OSError(f"unknown host {host}")
        return [PUBLIC] if len(self.calls) == 1 else [PRIVATE]


class Tripwire:
    """A listener on the private address that only counts who connects."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((PRIVATE, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close()


@contextmanager
def public_and_private(
    routes: dict[str, Callable[[BaseHTTPRequestHandler, int], None]],
) -> Iterator[tuple[int, Tripwire]]:
    """An HTTP server on PUBLIC:port and a tripwire on PRIVATE:port (the same port)."""

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            routes.get(self.path, _page)(self, port)

        def log_message(self, *a: object) -> None:
            pass

    for _ in range(50):
        srv = ThreadingHTTPServer((PUBLIC, 0), H)
        port = srv.server_address[1]
        try:
            trip = Tripwire(port)
            break
        except OSError:
            srv.server_close()
    else:
        pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2")
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield port, trip
    finally:
        srv.shutdown()
        srv.server_close()
        trip.close()


def _page(h: BaseHTTPRequestHandler, port: int) -> None:
    body = b"<html><title>public page</title></html>"
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _redirect_to_same_name(h: BaseHTTPRequestHandler, port: int) -> None:
    h.send_response(302)
    h.send_header("Location", f"http://rebind.example:{port}/")
    h.send_header("Content-Length", "0")
    h.end_headers()


def test_rebinding_resolver_cannot_turn_a_probe_to_the_private_address() -> None:
    resolver = Rebinding()
    with public_and_private({}) as (port, trip):
        r = Prober(Guard(ALLOW_PUBLIC, resolver=resolver), FAST).probe(Target("rebind.example", port)).data
    assert r["refused"] is None and r["address"] == PUBLIC
    assert r["tcp"]["state"] == "open" and r["http"]["status"] == 200 and r["http"]["title"] == "public page"
    assert resolver.calls == ["rebind.example"], "resolved once; TCP, TLS and HTTP all used the checked address"
    assert trip.connections == 0


def test_redirect_to_the_same_name_is_checked_again_and_refused_when_it_rebinds() -> None:
    resolver = Rebinding()
    with public_and_private({"/go": _redirect_to_same_name}) as (port, trip):
        p = Prober(Guard(ALLOW_PUBLIC, resolver=resolver), FAST)
        r = p.probe(parse_target(f"http://rebind.example:{port}/go")).data
    h = r["http"]
    assert h["status"] == 302
    assert (
        h["redirect_refused"]
        == "redirect to rebind.example: resolves to loopback address 127.0.0.1 (not in the allow-list)"
    )
    assert trip.connections == 0


def test_a_name_answering_public_and_private_addresses_together_is_refused_outright() -> None:
    with public_and_private({}) as (port, trip):
        guard = Guard(ALLOW_PUBLIC, resolver=lambda h: [PUBLIC, PRIVATE])
        r = Prober(guard, FAST).probe(Target("both.example", port)).data
    assert r["refused"] == "resolves to loopback address 127.0.0.1 (not in the allow-list)"
    assert r["tcp"] is None and trip.connections == 0


@pytest.mark.parametrize("via", ["plain", "connect"])
def test_browser_proxy_checks_every_request_and_never_follows_a_rebind(via: str) -> None:
    resolver = Rebinding()
    proxy = GuardProxy(Guard(ALLOW_PUBLIC, resolver=resolver), io_timeout_s=3)
    try:
        with public_and_private({}) as (port, trip):
            first = _through_proxy(proxy.port, "rebind.example", port, via)
            second = _through_proxy(proxy.port, "rebind.example", port, via)
    finally:
        proxy.stop()
    assert first.startswith("HTTP/1.") and " 200 " in first.split("\r\n")[0]
    assert " 403 " in second.split("\r\n")[0] and "loopback address 127.0.0.1" in second
    assert resolver.calls == ["rebind.example", "rebind.example"]
    assert proxy.refusals == ["rebind.example: resolves to loopback address 127.0.0.1 (not in the allow-list)"]
    assert trip.connections == 0


def _through_proxy(proxy_port: int, host: str, port: int, via: str) -> str:
    """One request through the proxy, as Chromium sends it; the raw response head and body."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as s:
        get = f"GET {'/' if via == 'connect' else f'http://{host}:{port}/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        get += "Connection: close\r\n\r\n"
        if via == "connect":
            s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            head = s.recv(4096).decode("latin-1")
            if " 200 " not in head.split("\r\n")[0]:
                return head + _read_all(s)
        s.sendall(get.encode())
        return _read_all(s)


def _read_all(s: socket.socket) -> str:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out.decode("latin-1")


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("2130706433", "loopback address 127.0.0.1"),  # decimal
        ("0x7f000001", "loopback address 127.0.0.1"),  # hex
        ("0177.0.0.1", "loopback address 127.0.0.1"),  # octal
        ("127.1", "loopback address 127.0.0.1"),  # short form
        ("0", "unspecified address 0.0.0.0"),
        ("LOCALHOST.", "loopback address 127.0.0.1"),
        ("::ffff:169.254.169.254", "cloud metadata address 169.254.169.254"),  # IPv4-mapped
        ("[::ffff:a9fe:a9fe]", "cloud metadata address 169.254.169.254"),
        ("64:ff9b::a9fe:a9fe", "reserved address 64:ff9b::a9fe:a9fe"),  # NAT64 of the metadata address
        ("2002:a9fe:a9fe::1", "IPv6 transition address"),  # 6to4 of the metadata address
    ],
)
def test_other_spellings_of_refused_addresses_are_refused(host: str, reason: str) -> None:
    with pytest.raises(Refused) as info:
        Guard([], resolver=system_resolver(2.0)).check(host)
    assert reason in info.value.reason


def test_a_proxy_request_with_credentials_in_the_url_is_checked_on_the_real_host() -> None:
    proxy = GuardProxy(Guard(ALLOW_PUBLIC, resolver=lambda h: [PRIVATE] if h == "internal.example" else [PUBLIC]))
    try:
        with public_and_private({}) as (port, trip):
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{proxy.port}"})
            )
            with pytest.raises(urllib.error.HTTPError) as info:
                opener.open(f"http://public.example@internal.example:{port}/", timeout=5)
    finally:
        proxy.stop()
    assert info.value.code == 403
    assert proxy.refusals == ["internal.example: resolves to loopback address 127.0.0.1 (not in the allow-list)"]
    assert trip.connections == 0
