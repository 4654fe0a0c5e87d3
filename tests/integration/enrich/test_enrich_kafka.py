"""The enrich service on the real runtime and broker: evaluated in, enriched out, state, DLQ."""

from __future__ import annotations

import json
import threading
import time

import pytest
from confluent_kafka import Producer

from alertline.avro import SingleObjectCodec
from alertline.kafka.admin import create_topics
from alertline.kafka.runtime import Runner
from alertline.settings import RuntimeSettings
from alertline.testing.kafka import read_all
from alertline.topics import topic
from services.enrich.app import build, stage
from tests.integration.enrich.helpers import evaluated, exposure_alert, settings
from tests.integration.enrich.servers import http_server

pytestmark = pytest.mark.kafka


def test_evaluated_alerts_flow_to_enriched_drops_vanish_and_garbage_is_dead_lettered(
    kafka_bootstrap: str, prefix: str
) -> None:
    codec = SingleObjectCodec()
    with http_server({"/tor": lambda h: _plain(h, "185.220.101.1\n")}) as port:
        s = settings(prefix, kafka_bootstrap, feeds={"tor-exit": f"http://127.0.0.1:{port}/tor"},
                     runtime=RuntimeSettings(instance_id="e1", http_port=0, http_host="127.0.0.1",
                                             session_timeout_ms=6000))  # fmt: skip
        create_topics(s.kafka, ["evaluated", "enriched", "enrich.dlq", "enrich.state"])
        built = build(s)
        built.feeds.refresh()
        tor = evaluated(1, indicators={"ips": ["185.220.101.1"], "domains": [], "users": [], "ports": []},
                        control_id="IAM.1", resources=[])  # fmt: skip
        dropped = evaluated(2, action="drop")
        exposed = exposure_alert(3, "127.0.0.1", [port])
        p = Producer({"bootstrap.servers": kafka_bootstrap})
        src = topic(prefix, "evaluated")
        for ev in (tor, dropped, exposed):
            p.produce(src, codec.encode("decision", ev), ev["alert"]["identity"].encode(), partition=0)
        # last on the same partition: once it is dead-lettered, everything before it was processed
        p.produce(src, b"\xc3\x01not-a-known-schema", b"garbage", partition=0)
        p.flush()
        runner = Runner(stage(s, built.service), s.kafka, s.runtime, codec)
        t = threading.Thread(target=runner.run, kwargs={"install_signals": False}, daemon=True)
        t.start()
        try:
            dead = read_all(kafka_bootstrap, topic(prefix, "enrich.dlq"), timeout=90, expect=1)
            out = read_all(kafka_bootstrap, topic(prefix, "enriched"), timeout=30)
            state = read_all(kafka_bootstrap, topic(prefix, "enrich.state"), timeout=30, expect=1)
        finally:
            runner.stop()
            t.join(30)
            built.close()
    by_key = {m.key().decode(): codec.decode("enrichment", m.value()) for m in out}
    assert set(by_key) == {tor["alert"]["identity"], exposed["alert"]["identity"]}, "the drop produced nothing"
    rep = by_key[tor["alert"]["identity"]]
    assert rep["kind"] == "alert" and rep["decision"]["action"] == "ticket"
    [e] = rep["enrichments"]
    assert e["enricher"] == "ip_reputation" and e["verdict"] == "suspicious"
    assert e["summary"].startswith("185.220.101.1 was a Tor exit (list of ")
    assert json.loads(e["data_json"])["tor_exit"] is True
    exp = by_key[exposed["alert"]["identity"]]["enrichments"]
    assert [x["verdict"] for x in exp] == ["exposed"] and "HTTP 200" in exp[0]["summary"]

    [st] = state
    assert st.key().decode() == exposed["alert"]["identity"]
    saved = codec.decode("enrich_state", st.value())
    assert saved["targets"] == [{"host": "127.0.0.1", "port": port, "context": {}}]
    assert saved["results"][0]["fingerprint"] == exp[0]["fingerprint"]

    [d] = dead
    h = dict(d.headers())
    assert h["alertline.error.class"] == b"alertline.errors.DecodeError"
    assert codec.decode("dead_letter", d.value())["value"] == b"\xc3\x01not-a-known-schema"


def _plain(h, body: str) -> None:  # type: ignore[no-untyped-def]
    data = body.encode()
    h.send_response(200)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def test_recheck_state_survives_a_restart_and_a_closed_port_yields_one_recheck_event(
    kafka_bootstrap: str, prefix: str
) -> None:
    from services.enrich.settings import RecheckSettings

    codec = SingleObjectCodec()
    rt = RuntimeSettings(instance_id="r1", http_port=0, http_host="127.0.0.1", session_timeout_ms=6000)
    s = settings(prefix, kafka_bootstrap, runtime=rt, recheck=RecheckSettings(interval_s=1.0, tick_interval_s=0.5))
    create_topics(s.kafka, ["evaluated", "enriched", "enrich.dlq", "enrich.state"])
    out_topic = topic(prefix, "enriched")

    def run_until(check, timeout: float):  # type: ignore[no-untyped-def]
        built = build(s)
        runner = Runner(stage(s, built.service), s.kafka, s.runtime, codec)
        t = threading.Thread(target=runner.run, kwargs={"install_signals": False}, daemon=True)
        t.start()
        try:
            return check()
        finally:
            runner.stop()
            t.join(30)
            built.close()

    with http_server() as port:
        ev = exposure_alert(9, "127.0.0.1", [port])
        p = Producer({"bootstrap.servers": kafka_bootstrap})
        p.produce(topic(prefix, "evaluated"), codec.encode("decision", ev), ev["alert"]["identity"].encode())
        p.flush()

        def first_phase():  # type: ignore[no-untyped-def]
            got = read_all(kafka_bootstrap, out_topic, timeout=60, expect=1)
            time.sleep(3)  # let several re-checks of the unchanged page run
            return got

        first = run_until(first_phase, 60)
        assert [codec.decode("enrichment", m.value())["kind"] for m in first] == ["alert"]
        assert len(read_all(kafka_bootstrap, out_topic, timeout=10)) == 1, "unchanged re-checks: no event"
        states = [
            codec.decode("enrich_state", m.value()) for m in read_all(kafka_bootstrap, topic(prefix, "enrich.state"))
        ]
        assert states[-1]["checks"] >= 1, "re-checks ran (and were recorded in the state topic)"
    # the web server is gone: the port is closed now. A new instance restores the state and re-checks.

    def wait_for_recheck():  # type: ignore[no-untyped-def]
        read_all(kafka_bootstrap, out_topic, timeout=60, expect=2)
        time.sleep(3)  # several more ticks: the closed port must not be reported again
        return read_all(kafka_bootstrap, out_topic, timeout=10)

    after = run_until(wait_for_recheck, 60)
    kinds = [codec.decode("enrichment", m.value())["kind"] for m in after]
    assert kinds == ["alert", "recheck"]
    change = codec.decode("enrichment", after[1].value())["enrichments"]
    assert [e["summary"] for e in change] == [f"port {port} now closed on 127.0.0.1:{port} (was open)"]
