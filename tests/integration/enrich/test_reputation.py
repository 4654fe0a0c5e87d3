"""IP reputation: feeds downloaded from a local server, AbuseIPDB against a local fake, actor context."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from alertline.clock import FixedClock
from alertline.stage import Context, PartitionState, Record
from services.enrich.abuseipdb import AbuseIpDb, AbuseIpDbConfig
from services.enrich.app import build
from services.enrich.engine import Engine, Task
from services.enrich.enrichers import AbuseIpDbEnricher, IpReputation
from services.enrich.feeds import Feeds, FeedSpec
from services.enrich.settings import AbuseIpDbSettings
from tests.integration.enrich.helpers import NOW, intrusion_alert, settings
from tests.integration.enrich.servers import http_server

TOR = "185.220.101.1\n185.220.101.2\n"
BLOCK = "# drop list\n203.0.113.0/24 ; SBL1\n"


def _text(body: str, etag: str | None = None) -> Any:
    def fn(h: BaseHTTPRequestHandler) -> None:
        if etag and h.headers.get("If-None-Match") == etag:
            h.send_response(304)
            h.end_headers()
            return
        data = body.encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(data)))
        if etag:
            h.send_header("ETag", etag)
        h.end_headers()
        h.wfile.write(data)

    return fn


def test_tor_and_block_list_hits_say_what_was_true_when() -> None:
    clock = FixedClock(NOW)
    with http_server({"/tor": _text(TOR), "/drop": _text(BLOCK)}) as port:
        feeds = Feeds({
            "tor-exit": FeedSpec("tor-exit", f"http://127.0.0.1:{port}/tor", "tor", "suspicious"),
            "drop": FeedSpec("drop", f"http://127.0.0.1:{port}/drop", "blocklist", "malicious"),
        }, clock=clock)  # fmt: skip
        assert feeds.refresh() == {"tor-exit": None, "drop": None}
    clock.advance(1800)
    rep = IpReputation(feeds, clock=clock)
    tor = rep.run(Task("ip_reputation", "185.220.101.2"), 0)
    assert tor.summary == "185.220.101.2 was a Tor exit (list of 2026-11-23T10:00Z) at 2026-11-23T10:30Z"
    assert tor.verdict == "suspicious" and tor.data["tor_exit"] is True
    assert tor.observed_at == clock.now
    bad = rep.run(Task("ip_reputation", "203.0.113.9"), 0)
    assert bad.verdict == "malicious" and "on block list drop" in bad.summary
    clean = rep.run(Task("ip_reputation", "198.51.100.1"), 0)
    assert clean.verdict == "info" and clean.summary == "198.51.100.1 was on no configured list at 2026-11-23T10:30Z"


def test_failed_download_keeps_the_previous_list_and_unloaded_list_is_not_a_clean_bill() -> None:
    clock = FixedClock(NOW)
    with http_server({"/tor": _text(TOR, etag='"v1"')}) as port:
        feeds = Feeds({"tor-exit": FeedSpec("tor-exit", f"http://127.0.0.1:{port}/tor", "tor")}, clock=clock)
        assert feeds.refresh_one("tor-exit") is None
        clock.advance(60)
        assert feeds.refresh_one("tor-exit") is None  # 304 Not Modified: same list, fresher timestamp
        assert feeds.status()["tor-exit"].snapshot.fetched_at == clock.now  # type: ignore[union-attr]
    err = feeds.refresh_one("tor-exit")  # server gone
    assert err is not None and "ConnectionError" in err
    st = feeds.status()["tor-exit"]
    assert st.snapshot is not None and "185.220.101.1" in st.snapshot.ips and st.error == err

    never = Feeds({"drop": FeedSpec("drop", "http://127.0.0.1:9/none")}, timeout_s=1, clock=clock)
    never.refresh()
    f = IpReputation(never, clock=clock).run(Task("ip_reputation", "203.0.113.9"), 0)
    assert "not checked, list unavailable: drop" in f.summary and f.data["unavailable"] == ["drop"]


def test_feed_in_an_unknown_format_is_an_error_not_an_empty_list() -> None:
    with http_server({"/html": _text("<html>maintenance</html>\n")}) as port:
        feeds = Feeds({"x": FeedSpec("x", f"http://127.0.0.1:{port}/html")})
        err = feeds.refresh_one("x")
    assert err is not None and "no address parsed" in err
    assert feeds.status()["x"].snapshot is None


class FakeAbuseIpDb:
    """The AbuseIPDB v2 check endpoint: key check, JSON shape, 429 with Retry-After."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.limited = False

    def route(self, h: BaseHTTPRequestHandler) -> None:
        from urllib.parse import parse_qs, urlsplit

        q = {k: v[0] for k, v in parse_qs(urlsplit(h.path).query).items()}
        self.calls.append(q)
        if h.headers.get("Key") != "test-key":
            return self._send(h, 401, {"errors": [{"detail": "Authentication failed.", "status": 401}]})
        if self.limited:
            return self._send(h, 429, {"errors": [{"detail": "Daily rate limit exceeded"}]}, {"Retry-After": "120"})
        ip = q["ipAddress"]
        score = 100 if ip.startswith("185.") else 0
        return self._send(h, 200, {"data": {
            "ipAddress": ip, "isPublic": True, "abuseConfidenceScore": score, "countryCode": "DE",
            "usageType": "Data Center/Web Hosting/Transit", "isp": "Example Hosting", "domain": "example.net",
            "isTor": score == 100, "totalReports": 57 if score else 0, "lastReportedAt": "2026-11-22T09:00:00+00:00",
        }})  # fmt: skip

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)


def test_abuseipdb_check_scores_and_caches_and_backs_off_on_429() -> None:
    fake = FakeAbuseIpDb()
    with http_server({"/api/v2/check": fake.route}) as port:
        client = AbuseIpDb(AbuseIpDbConfig("test-key", f"http://127.0.0.1:{port}", 30))
        engine = Engine([AbuseIpDbEnricher(client)])
        try:
            r = engine.run([Task("abuseipdb", "185.220.101.2"), Task("abuseipdb", "198.51.100.1")])
            bad, ok = r[Task("abuseipdb", "185.220.101.2")], r[Task("abuseipdb", "198.51.100.1")]
            assert bad.verdict == "malicious" and bad.data["score"] == 100
            assert bad.summary == "185.220.101.2: AbuseIPDB confidence 100/100, 57 reports, Example Hosting (DE)"
            assert ok.verdict == "info"
            assert fake.calls[0]["maxAgeInDays"] == "30"
            engine.run([Task("abuseipdb", "185.220.101.2")])
            assert len(fake.calls) == 2, "the second lookup comes from the cache"
            fake.limited = True
            limited = engine.run([Task("abuseipdb", "185.220.101.3")])[Task("abuseipdb", "185.220.101.3")]
            assert limited.verdict == "error" and "rate limit" in limited.summary
            again = engine.run([Task("abuseipdb", "185.220.101.4")])[Task("abuseipdb", "185.220.101.4")]
            assert again.verdict == "error" and len(fake.calls) == 3, "paused by Retry-After: no call made"
        finally:
            engine.close()
        wrong = AbuseIpDbEnricher(AbuseIpDb(AbuseIpDbConfig("bad-key", f"http://127.0.0.1:{port}")))
        e2 = Engine([wrong])
        try:
            f = e2.run([Task("abuseipdb", "8.8.8.8")])[Task("abuseipdb", "8.8.8.8")]
        finally:
            e2.close()
        assert f.verdict == "error" and "rejected the API key (HTTP 401)" in f.summary


def test_intrusion_alert_gets_reputation_and_actor_context() -> None:
    fake = FakeAbuseIpDb()
    with http_server({"/tor": _text(TOR), "/api/v2/check": fake.route}) as port:
        s = settings(
            feeds={"tor-exit": f"http://127.0.0.1:{port}/tor"},
            abuseipdb=AbuseIpDbSettings(api_key="test-key", base_url=f"http://127.0.0.1:{port}"),  # type: ignore[arg-type]
        )
        built = build(s, clock=FixedClock(NOW))
        try:
            built.feeds.refresh()
            ev = intrusion_alert(7, ["185.220.101.1", "10.0.0.5"])
            rec = Record("t.evaluated.v1", 0, 0, ev["alert"]["identity"].encode(), ev, {}, 0)
            built.service.prepare([rec])
            [out] = list(built.service.handle(rec, Context(now=FixedClock(NOW), state=PartitionState())))
        finally:
            built.close()
    es = {(e["enricher"], e["subject"]): e for e in out.value["enrichments"]}
    assert set(es) == {
        ("ip_reputation", "185.220.101.1"),
        ("abuseipdb", "185.220.101.1"),
        ("actor", "185.220.101.1,10.0.0.5,arn:aws:iam::123456789012:user/alice,c2.bad.example"),
    }
    actor = es[("actor", "185.220.101.1,10.0.0.5,arn:aws:iam::123456789012:user/alice,c2.bad.example")]
    assert actor["verdict"] == "malicious"
    assert actor["summary"].startswith("Actor in UnauthorizedAccess:IAMUser/TorIPCaller: 185.220.101.1 (")
    assert "was a Tor exit" in actor["summary"] and "AbuseIPDB confidence 100/100" in actor["summary"]
    assert "10.0.0.5 (nothing known)" in actor["summary"]
    assert "principal arn:aws:iam::123456789012:user/alice" in actor["summary"]
    data = json.loads(actor["data_json"])
    assert data["alert_says"] == {"Service.Action.AwsApiCallAction.RemoteIpDetails.Organization.Asn": "4242"}
    assert len(fake.calls) == 1, "private addresses are not sent to outside services"


def test_feeds_refresh_on_their_schedule() -> None:
    body = {"v": "185.220.101.1\n"}

    def tor(h: BaseHTTPRequestHandler) -> None:
        _text(body["v"])(h)

    import time

    with http_server({"/tor": tor}) as port:
        feeds = Feeds({"tor-exit": FeedSpec("tor-exit", f"http://127.0.0.1:{port}/tor", "tor")}, interval_s=0.2)
        feeds.start()
        try:
            deadline = time.monotonic() + 10
            while feeds.status()["tor-exit"].snapshot is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "185.220.101.1" in feeds.status()["tor-exit"].snapshot.ips  # type: ignore[union-attr]
            body["v"] = "185.220.101.99\n"
            while "185.220.101.99" not in feeds.status()["tor-exit"].snapshot.ips and time.monotonic() < deadline:  # type: ignore[union-attr]
                time.sleep(0.05)
            ips = feeds.status()["tor-exit"].snapshot.ips  # type: ignore[union-attr]
            assert "185.220.101.99" in ips and "185.220.101.1" not in ips
        finally:
            feeds.stop()
