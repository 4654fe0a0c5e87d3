"""Re-checks against real local servers: only a changed result produces an event."""

from __future__ import annotations

import json
from collections.abc import Iterable

from alertline.clock import FixedClock
from alertline.stage import Context, Output, PartitionState, Record
from services.enrich.app import build
from tests.integration.enrich.helpers import NOW, exposure_alert, settings
from tests.integration.enrich.servers import banner_server, http_server


def _rec(ev: dict) -> Record:  # type: ignore[type-arg]
    return Record("t.evaluated.v1", 0, 0, ev["alert"]["identity"].encode(), ev, {}, 0)


def _run(st: PartitionState, outs: Iterable[Output]) -> list[Output]:
    got = list(outs)
    st.end_record(ok=True)
    st.commit_batch()
    return got


def test_port_closed_between_runs_yields_exactly_one_change_and_unchanged_runs_none() -> None:
    clock = FixedClock(NOW)
    built = build(settings(), clock=clock)
    svc = built.service
    st = PartitionState()
    ctx = Context(now=clock, state=st)
    try:
        with http_server() as web:
            ssh = banner_server()
            ssh_port = ssh.__enter__()
            ev = exposure_alert(1, "127.0.0.1", [web, ssh_port])
            first = _run(st, svc.handle(_rec(ev), ctx))
            assert [o.value["kind"] for o in first] == ["alert"]
            verdicts = {e["subject"]: e["verdict"] for e in first[0].value["enrichments"]}
            assert verdicts == {f"127.0.0.1:{web}": "exposed", f"127.0.0.1:{ssh_port}": "exposed"}
            assert st.get(ev["alert"]["identity"])["targets"][0]["host"] == "127.0.0.1"

            clock.advance(1800)
            assert _run(st, svc.tick(ctx)) == [], "not due yet"
            clock.advance(1800)
            assert _run(st, svc.tick(ctx)) == [], "unchanged result, no event"

            ssh.__exit__(None, None, None)  # port 22-equivalent closes
            clock.advance(3600)
            changed = _run(st, svc.tick(ctx))
            assert len(changed) == 1
            out = changed[0].value
            assert out["kind"] == "recheck" and changed[0].key == ev["alert"]["identity"]
            assert len(out["enrichments"]) == 1
            e = out["enrichments"][0]
            assert e["summary"] == f"port {ssh_port} now closed on 127.0.0.1:{ssh_port} (was open)"
            assert e["verdict"] == "closed" and e["changed_from"] is not None
            assert e["observed_at"] == clock.now
            assert json.loads(e["data_json"])["tcp"]["state"] == "closed"

            clock.advance(3600)
            assert _run(st, svc.tick(ctx)) == [], "the closed port stays closed: no second event"
            assert st.get(ev["alert"]["identity"])["checks"] == 3
    finally:
        built.close()


def test_http_title_change_is_reported_and_resolved_alert_stops_rechecks() -> None:
    clock = FixedClock(NOW)
    built = build(settings(), clock=clock)
    svc = built.service
    st = PartitionState()
    ctx = Context(now=clock, state=st)
    title = {"v": b"Old admin"}

    def page(h):  # type: ignore[no-untyped-def]
        body = b"<html><title>" + title["v"] + b"</title></html>"
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    try:
        with http_server({"/": page}) as web:
            ev = exposure_alert(2, "127.0.0.1", [web])
            _run(st, svc.handle(_rec(ev), ctx))
            title["v"] = b"New admin"
            clock.advance(3600)
            changed = _run(st, svc.tick(ctx))
            assert len(changed) == 1
            assert changed[0].value["enrichments"][0]["summary"] == (
                f"127.0.0.1:{web}: HTTP title changed: 'Old admin' → 'New admin'"
            )
            resolved = exposure_alert(2, "127.0.0.1", [web], status="resolved")
            outs = _run(st, svc.handle(_rec(resolved), ctx))
            assert [o.value["kind"] for o in outs] == ["alert"] and outs[0].value["enrichments"] == []
            assert st.get(ev["alert"]["identity"]) is None
            title["v"] = b"Changed again"
            clock.advance(3600)
            assert _run(st, svc.tick(ctx)) == []
    finally:
        built.close()


def test_dropped_alert_produces_nothing_and_ends_rechecks() -> None:
    clock = FixedClock(NOW)
    built = build(settings(), clock=clock)
    st = PartitionState()
    ctx = Context(now=clock, state=st)
    try:
        with http_server() as web:
            ev = exposure_alert(3, "127.0.0.1", [web])
            _run(st, built.service.handle(_rec(ev), ctx))
            assert st.get(ev["alert"]["identity"]) is not None
            dropped = exposure_alert(3, "127.0.0.1", [web])
            dropped["decision"]["action"] = "drop"
            assert _run(st, built.service.handle(_rec(dropped), ctx)) == []
            assert st.get(ev["alert"]["identity"]) is None
    finally:
        built.close()
