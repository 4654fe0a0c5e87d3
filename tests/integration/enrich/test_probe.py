"""The prober against real local servers on 127.0.0.1 (opted in through the allow-list)."""

from __future__ import annotations

import time

import pytest

from services.enrich.guard import Guard
from services.enrich.probe import ProbeConfig, Prober, Target, parse_target
from tests.integration.enrich.servers import (
    banner_server,
    closed_port,
    http_server,
    make_cert,
    redirect,
    silent_port,
    tls_context,
)

LOOPBACK = ["127.0.0.0/8"]
FAST = ProbeConfig(
    connect_timeout_s=1.0, read_timeout_s=2.0, banner_wait_s=0.3, probe_timeout_s=10, per_target_delay_s=0
)


def prober(**kw: object) -> Prober:
    return Prober(Guard(LOOPBACK), FAST, **kw)  # type: ignore[arg-type]


def test_http_server_reports_status_title_and_server_header() -> None:
    with http_server() as port:
        r = prober().probe(Target("127.0.0.1", port)).data
    assert r["refused"] is None
    assert r["tcp"]["state"] == "open"
    assert r["tls"]["error"]
    h = r["http"]
    assert (h["status"], h["title"], h["server"]) == (200, "Payments admin & console", "nginx/1.25.3")
    assert h["url"] == f"http://127.0.0.1:{port}/"


def test_ssh_banner_is_read_without_sending_anything() -> None:
    with banner_server() as port:
        r = prober().probe(Target("127.0.0.1", port)).data
    assert r["tcp"]["state"] == "open"
    assert r["ssh"] == {"banner": "SSH-2.0-OpenSSH_9.6", "protocol": "2.0", "software": "OpenSSH_9.6"}
    assert r["http"] is None and r["tls"] is None


def test_tls_server_certificate_is_described() -> None:
    cert, key = make_cert()
    with http_server(tls=tls_context(cert, key)) as port:
        r = prober().probe(Target("127.0.0.1", port)).data
    t = r["tls"]
    assert t["subject"] == "O=Alertline Test,CN=payments.example.test"
    assert t["issuer"] == t["subject"] and t["self_signed"] is True
    assert t["sans"] == ["payments.example.test"]
    assert t["not_after"] == "2031-01-02T03:04:05Z"
    assert t["expired"] is False and len(t["sha256"]) == 64
    assert r["http"]["url"].startswith("https://") and r["http"]["status"] == 200


def test_closed_port_is_reported_closed() -> None:
    with closed_port() as port:
        r = prober().probe(Target("127.0.0.1", port)).data
    assert r["tcp"]["state"] == "closed"
    assert r["http"] is None


def test_silent_port_is_filtered_within_the_connect_timeout() -> None:
    with silent_port() as port:
        t0 = time.monotonic()
        r = prober().probe(Target("127.0.0.1", port)).data
        took = time.monotonic() - t0
    assert r["tcp"]["state"] == "filtered"
    assert 0.9 <= took < 2.0, took


def test_url_target_keeps_scheme_and_path() -> None:
    with http_server({"/admin": redirect("/")}) as port:
        r = prober().probe(parse_target(f"http://127.0.0.1:{port}/admin")).data
    h = r["http"]
    assert h["redirects"] == [
        {"url": f"http://127.0.0.1:{port}/admin", "status": 302, "location": f"http://127.0.0.1:{port}/"}
    ]
    assert h["status"] == 200 and h["final_url"] == f"http://127.0.0.1:{port}/"
    assert r["tls"] is None


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address 169.254.169.254"),
        ("http://10.1.2.3/", "private address 10.1.2.3"),
        ("http://[fd00:ec2::254]/", "cloud metadata address fd00:ec2::254"),
        ("http://internal.example/", "resolves to private address 192.168.7.7"),
    ],
)
def test_redirect_into_refused_ranges_is_not_followed(location: str, reason: str) -> None:
    resolver = {"internal.example": ["192.168.7.7"]}
    p = Prober(Guard(LOOPBACK, resolver=lambda h: resolver[h]), FAST)
    with http_server({"/go": redirect(location)}) as port:
        r = p.probe(parse_target(f"http://127.0.0.1:{port}/go")).data
    h = r["http"]
    assert h["status"] == 302
    assert reason in h["redirect_refused"] and "not in the allow-list" in h["redirect_refused"]


def test_loopback_target_is_refused_without_the_allow_list() -> None:
    with http_server() as port:
        r = Prober(Guard([]), FAST).probe(Target("127.0.0.1", port)).data
    assert r["refused"] == "loopback address 127.0.0.1 (not in the allow-list)"
    assert r["tcp"] is None


def test_dns_name_is_connected_through_the_checked_address() -> None:
    calls: list[str] = []

    def resolver(host: str) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    with http_server() as port:
        r = Prober(Guard(LOOPBACK, resolver=resolver), FAST).probe(Target("app.example", port)).data
    assert r["address"] == "127.0.0.1" and r["http"]["status"] == 200
    assert calls == ["app.example"], "the name is resolved once, then the checked address is used"
