"""The stage handler: decode, dedupe redeliveries, decide, emit the evaluated alert (drops included)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from alertline.avro import Codec
from alertline.errors import BadInput
from alertline.model import Alert, Decision, EvaluatedAlert, EvaluateState
from alertline.stage import Context, Handler, Output, Record
from services.evaluate.splice import Splicer

Decide = Callable[[Alert, Any], Decision]


class Observer:
    """What the handler reports (metrics in the service, nothing in tests)."""

    def decided(self, decision: Decision) -> None:
        return

    def duplicate(self) -> None:
        return


def make_handler(
    decide: Decide,
    out_topic: str,
    codec: Codec,
    observer: Observer | None = None,
    splicer: Splicer | None = None,
) -> Handler:
    """A handler for raw ``alert`` records (the stage has ``input_schema=None``).

    ``decide(alert, now)`` makes the decision; ``ctx.state`` holds, per identity, the last
    revision decided. Evaluate is the first keyed stage, so it drops exact redeliveries:
    ingest may publish the same version twice after a crash between its Kafka commit and the
    source ack. A version whose revision equals the last one decided produces nothing.
    It decodes the alert itself so that ``splicer`` can reuse the alert's bytes in the output.
    """
    obs = observer or Observer()

    def handle(rec: Record, ctx: Context) -> Iterable[Output]:
        raw = rec.value
        if not isinstance(raw, bytes) or not raw:
            raise BadInput("empty record value")
        alert: Alert = codec.decode("alert", raw, rec.topic)
        identity = alert.get("identity")
        if not identity:
            raise BadInput("alert has no identity")
        if rec.key is None or rec.key_str != identity:
            raise BadInput(f"record key {rec.key_str!r} is not the alert identity {identity!r}")
        last: EvaluateState | None = ctx.state.get(identity)
        if last is not None and last["revision"] == alert["revision"]:
            obs.duplicate()
            return ()
        now = ctx.now()
        decision = decide(alert, now)
        state: EvaluateState = {"revision": alert["revision"], "decided_at": now}
        ctx.state.set(identity, state)
        obs.decided(decision)
        spliced = splicer.splice(raw, decision) if splicer is not None else None
        if spliced is not None:
            return (Output(out_topic, spliced, key=identity),)
        value: EvaluatedAlert = {"alert": alert, "decision": decision}
        return (Output(out_topic, value, key=identity, schema="decision"),)

    return handle
