"""The scan pass without cloud or broker: fakes for the sink and the archive (the real ones are
exercised in tests/integration/scan). What matters here is what happens when a part fails."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from alertline.clock import FixedClock
from alertline.errors import Transient
from alertline.stage import Output
from services.scan.checks import default_dir, load_checks
from services.scan.domain import Collected, Unit
from services.scan.scanner import Report, ScanMetrics, Scanner, Topics
from tests.unit.scan.test_domain import OPEN_SSH, sg

CHECKS = load_checks([default_dir()])
TOPICS = Topics("p.alerts.v1", "p.scan.state.v1", "p.scan.dlq.v1")
UNIT = Unit("aws:111111111111:eu-west-1", "aws", "111111111111", "eu-west-1")


class ListSink:
    def __init__(self) -> None:
        self.transactions: list[list[Output]] = []
        self.fail: Exception | None = None

    def publish(self, outputs: Iterable[Output]) -> int:
        if self.fail:
            raise self.fail
        batch = list(outputs)
        self.transactions.append(batch)
        return len(batch)


class DictArchive:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail = False

    def put(self, key: str, body: bytes, sha256_hex: str) -> str:
        if self.fail:
            raise Transient("s3 down")
        self.objects[key] = body
        return f"s3://archive/{key}"


def scanner(sink: ListSink, archive: DictArchive, metrics: ScanMetrics | None = None) -> Scanner:
    return Scanner(
        CHECKS, archive=archive, sink=sink, state={}, topics=TOPICS, metrics=metrics or ScanMetrics(),
        clock=FixedClock(datetime(2026, 11, 23, tzinfo=UTC)),
    )  # fmt: skip


def unit_with(*docs: dict[str, Any]) -> Collected:
    return Collected(UNIT, resources=list(docs), covered={"AwsEc2SecurityGroup"})  # type: ignore[arg-type]


def test_alerts_and_their_state_go_out_in_one_transaction_after_the_archive() -> None:
    sink, archive = ListSink(), DictArchive()
    rep = scanner(sink, archive).handle(unit_with(sg("sg-1", OPEN_SSH)))
    assert rep.outcome == "complete" and rep.new == 1
    (tx,) = sink.transactions
    assert [o.topic for o in tx] == [TOPICS.alerts, TOPICS.state]
    assert tx[0].key == tx[1].key == tx[0].value["identity"]  # type: ignore[index]
    (key,) = archive.objects
    assert key.startswith("raw/scan/2026/11/23/") and tx[0].value["raw"]["uri"] == f"s3://archive/{key}"  # type: ignore[index]


def test_an_archive_failure_publishes_nothing_and_keeps_the_state() -> None:
    sink, archive = ListSink(), DictArchive()
    s = scanner(sink, archive)
    archive.fail = True
    rep = s.handle(unit_with(sg("sg-1", OPEN_SSH)))
    assert rep.outcome == "failed" and "s3 down" in (rep.failed or "")
    assert sink.transactions == [] and s.failing() == 0


def test_a_publish_failure_leaves_the_state_where_it_was_so_the_next_run_repeats_it() -> None:
    sink, archive = ListSink(), DictArchive()
    s = scanner(sink, archive)
    sink.fail = Transient("kafka publish failed")
    rep = s.handle(unit_with(sg("sg-1", OPEN_SSH)))
    assert rep.outcome == "failed" and s.failing() == 0
    sink.fail = None
    rep = s.handle(unit_with(sg("sg-1", OPEN_SSH)))
    assert rep.new == 1 and s.failing() == 1


def test_a_crashing_collector_fails_only_its_own_unit() -> None:
    sink, archive = ListSink(), DictArchive()
    metrics = ScanMetrics()
    s = scanner(sink, archive, metrics)
    other = Unit("aws:222222222222:eu-west-1", "aws", "222222222222", "eu-west-1")

    def boom() -> Collected:
        raise KeyError("IpPermissions")

    report = s.run([(other, boom), (UNIT, lambda: unit_with(sg("sg-1", OPEN_SSH)))], concurrency=2, report=Report())
    outcomes = {u.unit: u.outcome for u in report.units}
    assert outcomes == {other.key: "incomplete", UNIT.key: "complete"}
    crashed = next(u for u in report.units if u.unit == other.key)
    assert "KeyError" in crashed.errors[0] and not report.ok
    s.finish(report)
    assert metrics.registry.get_sample_value("alertline_scan_last_success_timestamp_seconds") == 0
    assert metrics.registry.get_sample_value("alertline_scan_collect_errors_total", {"provider": "aws"}) == 1
