"""The exposure prober: what answers on host:port, looked at the way a careful scanner would.

Every connection goes to an address the guard checked (never to a name resolved again), with
a timeout on every step and an overall deadline per target. Per target address, a
politeness gate bounds concurrent connections and spaces their starts. HTTP redirects are
followed by hand so the guard sees every hop.
"""

from __future__ import annotations

import hashlib
import html
import http.client
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from alertline.clock import Clock, iso, utcnow
from services.enrich.guard import Checked, Guard, Refused

REDIRECTS = (301, 302, 303, 307, 308)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_CHARSET = re.compile(r"charset=([\w.:-]+)", re.I)


@dataclass(frozen=True)
class ProbeConfig:
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 5.0
    banner_wait_s: float = 1.0
    probe_timeout_s: float = 30.0
    max_redirects: int = 5
    max_body_bytes: int = 256 * 1024
    per_target_concurrency: int = 2
    per_target_delay_s: float = 0.2
    user_agent: str = "alertline-probe/0.1 (+exposure check by the owner's security team)"


@dataclass(frozen=True)
class Target:
    """One thing to probe. ``scheme``/``path`` are set when the target was given as a URL."""

    host: str
    port: int
    scheme: str | None = None
    path: str = "/"
    context: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_target(text: str) -> Target:
    """``host:port``, ``[v6]:port`` or an http(s) URL."""
    text = text.strip()
    if "://" in text:
        u = urlsplit(text)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"unsupported URL {text!r} (http or https with a host)")
        port = u.port or (443 if u.scheme == "https" else 80)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        return Target(u.hostname, port, u.scheme, path)
    host, sep, port_s = text.rpartition(":")
    if not sep or not port_s.isdigit() or not host:
        raise ValueError(f"target {text!r} is neither host:port nor a URL")
    port = int(port_s)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return Target(host.strip("[]"), port)


@dataclass
class ProbeResult:
    data: dict[str, Any]
    screenshot: bytes | None = None


class Screenshotter(Protocol):
    def capture(self, url: str) -> bytes: ...


class Politeness:
    """Per-address: at most ``limit`` connections at once, starts at least ``delay_s`` apart."""

    def __init__(self, limit: int, delay_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.delay_s, self._mono = max(1, limit), delay_s, monotonic
        self._lock = threading.Lock()
        self._sems: dict[str, threading.BoundedSemaphore] = {}
        self._next: dict[str, float] = {}
        self._users: dict[str, int] = {}

    @contextmanager
    def slot(self, address: str, deadline: float) -> Iterator[None]:
        with self._lock:
            sem = self._sems.setdefault(address, threading.BoundedSemaphore(self.limit))
            self._users[address] = self._users.get(address, 0) + 1
        try:
            if not sem.acquire(timeout=max(0.0, deadline - self._mono())):
                raise TimeoutError(f"waited too long for a polite slot on {address}")
            try:
                with self._lock:
                    now = self._mono()
                    start = max(now, self._next.get(address, 0.0))
                    self._next[address] = start + self.delay_s
                if start > now:
                    time.sleep(min(start - now, max(0.0, deadline - now)))
                yield
            finally:
                sem.release()
        finally:
            with self._lock:
                self._users[address] -= 1
                if self._users[address] == 0:  # forget idle addresses so the maps stay small
                    del self._users[address]
                    self._sems.pop(address, None)
                    if self._next.get(address, 0.0) <= self._mono():
                        self._next.pop(address, None)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self, cap: float) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("probe deadline reached")
        return min(cap, left)


def _tls_context() -> ssl.SSLContext:
    # A scanner wants to see whatever certificate is served, valid or not.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _sni(host: str) -> str | None:
    try:
        import ipaddress

        ipaddress.ip_address(host)
        return None
    except ValueError:
        return host


def describe_certificate(der: bytes, now: datetime) -> dict[str, Any]:
    cert = x509.load_der_x509_certificate(der)
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(v) for v in ext.get_values_for_type(x509.DNSName)]
        sans += [str(v) for v in ext.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    not_after = cert.not_valid_after_utc
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "sans": sans,
        "not_before": iso(cert.not_valid_before_utc),
        "not_after": iso(not_after),
        "expired": not_after < now,
        "self_signed": cert.subject == cert.issuer,
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
        "serial": format(cert.serial_number, "x"),
    }


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=_tls_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=_sni(self.host))  # type: ignore[attr-defined]  # set by HTTPSConnection


class Prober:
    def __init__(
        self,
        guard: Guard,
        config: ProbeConfig | None = None,
        screenshotter: Screenshotter | None = None,
        clock: Clock = utcnow,
        politeness: Politeness | None = None,
    ) -> None:
        self.guard = guard
        self.cfg = config or ProbeConfig()
        self.screenshotter = screenshotter
        self.clock = clock
        self.polite = politeness or Politeness(self.cfg.per_target_concurrency, self.cfg.per_target_delay_s)

    # ------------------------------------------------------------------ entry point
    def probe(self, target: Target) -> ProbeResult:
        started = time.monotonic()
        data: dict[str, Any] = {
            "target": target.label,
            "host": target.host,
            "port": target.port,
            "address": None,
            "refused": None,
            "tcp": None,
            "banner": None,
            "ssh": None,
            "tls": None,
            "http": None,
            "screenshot": None,
            "observed_at": iso(self.clock()),
        }
        if target.context:
            data["context"] = dict(target.context)
        result = ProbeResult(data)
        try:
            checked = self.guard.check(target.host)
        except Refused as exc:
            data["refused"] = exc.reason
            data["duration_ms"] = int((time.monotonic() - started) * 1000)
            return result
        address = str(checked.address)
        data["address"] = address
        dl = _Deadline(self.cfg.probe_timeout_s)
        try:
            self._probe_checked(target, checked, address, dl, result)
        except TimeoutError as exc:
            data["error"] = f"timed out: {exc}"
        data["duration_ms"] = int((time.monotonic() - started) * 1000)
        return result

    # ------------------------------------------------------------------ steps
    def _connect(self, address: str, port: int, dl: _Deadline) -> socket.socket:
        with self.polite.slot(address, dl.at):
            return socket.create_connection((address, port), timeout=dl.left(self.cfg.connect_timeout_s))

    def _probe_checked(self, target: Target, checked: Checked, address: str, dl: _Deadline, out: ProbeResult) -> None:
        data = out.data
        t0 = time.monotonic()
        try:
            sock = self._connect(address, target.port, dl)
        except ConnectionRefusedError:
            data["tcp"] = {"state": "closed", "ms": _ms(t0)}
            return
        except TimeoutError:
            data["tcp"] = {"state": "filtered", "ms": _ms(t0), "detail": "no answer before the connect timeout"}
            return
        except OSError as exc:
            data["tcp"] = {"state": "unreachable", "ms": _ms(t0), "detail": exc.strerror or str(exc)}
            return
        data["tcp"] = {"state": "open", "ms": _ms(t0)}
        with sock:
            banner = self._read_banner(sock, dl)
        if banner:
            data["banner"] = banner
            if banner.startswith("SSH-"):
                software = banner.split("-", 2)[2] if banner.count("-") >= 2 else ""
                data["ssh"] = {"banner": banner, "protocol": banner.split("-")[1], "software": software}
            return  # a server that speaks first is not HTTP; do not send it requests
        scheme = target.scheme
        if scheme in (None, "https"):
            tls = self._tls(target, address, dl)
            data["tls"] = tls
            if scheme is None:
                scheme = "https" if tls and "error" not in tls else "http"
        assert scheme is not None
        default_port = 443 if scheme == "https" else 80
        host_part = f"[{target.host}]" if ":" in target.host else target.host
        netloc = host_part if target.port == default_port else f"{host_part}:{target.port}"
        url = f"{scheme}://{netloc}{target.path}"
        data["http"] = self._http(url, checked, dl)
        h = data["http"]
        if (
            self.screenshotter is not None
            and h.get("status") is not None
            and "html" in (h.get("content_type") or "")
            and h.get("redirect_refused") is None
        ):
            try:
                png = self.screenshotter.capture(url)
            except Exception as exc:  # noqa: BLE001 - a failed screenshot is reported, the probe result stands
                data["screenshot"] = {"url": url, "error": f"{type(exc).__name__}: {exc}"[:500]}
            else:
                out.screenshot = png
                data["screenshot"] = {"url": url, "bytes": len(png), "sha256": hashlib.sha256(png).hexdigest()}

    def _read_banner(self, sock: socket.socket, dl: _Deadline) -> str | None:
        try:
            sock.settimeout(dl.left(self.cfg.banner_wait_s))
            raw = sock.recv(512)
        except TimeoutError:
            return None
        except OSError:
            return None
        if not raw:
            return None
        line = raw.split(b"\n", 1)[0].rstrip(b"\r")
        return line.decode("utf-8", "replace")[:255]

    def _tls(self, target: Target, address: str, dl: _Deadline) -> dict[str, Any] | None:
        try:
            raw = self._connect(address, target.port, dl)
        except OSError as exc:
            return {"error": f"connect: {exc}"}
        try:
            raw.settimeout(dl.left(self.cfg.read_timeout_s))
            with _tls_context().wrap_socket(raw, server_hostname=_sni(target.host)) as tls:
                der = tls.getpeercert(binary_form=True)
                version = tls.version()
            if not der:
                return {"error": "no certificate presented", "version": version}
            info = describe_certificate(der, self.clock())
            info["version"] = version
            return info
        except (ssl.SSLError, OSError, ValueError) as exc:
            raw.close()
            return {"error": f"{type(exc).__name__}: {exc}"[:300]}

    def _http(self, url: str, first: Checked, dl: _Deadline) -> dict[str, Any]:
        redirects: list[dict[str, Any]] = []
        out: dict[str, Any] = {"url": url, "redirects": redirects, "redirect_refused": None}
        checked = first
        for _hop in range(self.cfg.max_redirects + 1):
            u = urlsplit(url)
            scheme, host = u.scheme, u.hostname or ""
            port = u.port or (443 if scheme == "https" else 80)
            address = str(checked.address)
            cls = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
            conn = cls(host, port, address, dl.left(self.cfg.read_timeout_s))
            path = (u.path or "/") + (f"?{u.query}" if u.query else "")
            try:
                with self.polite.slot(address, dl.at):
                    conn.request("GET", path, headers={"User-Agent": self.cfg.user_agent, "Accept": "*/*"})
                    resp = conn.getresponse()
                    body = resp.read(self.cfg.max_body_bytes) if resp.status not in REDIRECTS else b""
            except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
                out["error"] = f"{type(exc).__name__}: {exc}"[:300]
                out["final_url"] = url
                return out
            finally:
                conn.close()
            ctype = resp.getheader("Content-Type") or ""
            out.update(
                final_url=url,
                status=resp.status,
                reason=resp.reason,
                server=resp.getheader("Server"),
                content_type=ctype,
                title=_title(body, ctype),
                body_bytes=len(body),
            )
            location = resp.getheader("Location")
            if resp.status not in REDIRECTS or not location:
                return out
            nxt = urljoin(url, location)
            redirects.append({"url": url, "status": resp.status, "location": nxt})
            nu = urlsplit(nxt)
            if nu.scheme not in ("http", "https") or not nu.hostname:
                out["redirect_refused"] = f"redirect to unsupported URL {nxt[:200]}"
                return out
            try:
                checked = self.guard.check(nu.hostname)
            except Refused as exc:
                out["redirect_refused"] = f"redirect to {nu.hostname}: {exc.reason}"
                return out
            url = nxt
        out["error"] = f"more than {self.cfg.max_redirects} redirects"
        return out


def _title(body: bytes, content_type: str) -> str | None:
    m = _TITLE.search(body)
    if not m:
        return None
    cs = _CHARSET.search(content_type)
    try:
        text = m.group(1).decode(cs.group(1) if cs else "utf-8", "replace")
    except LookupError:
        text = m.group(1).decode("utf-8", "replace")
    return " ".join(html.unescape(text).split())[:200] or None


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)
