"""Write an EvaluatedAlert without encoding its alert a second time.

Avro encodes a record as its fields' encodings one after another, so the body of
``EvaluatedAlert {alert, decision}`` is exactly the alert's body followed by the decision's.
When an input record was written with the current alert schema (same fingerprint), its body
is reused as-is and only the small decision is encoded. Any other input (an older writer
schema, the Confluent wire format) takes the ordinary encoding path. A unit test checks the
spliced bytes equal the codec's own encoding.
"""

from __future__ import annotations

import io
from pathlib import Path

import fastavro
from fastavro.schema import parse_schema

from alertline.avro import MAGIC, fingerprint_of, load_sources, schemas_dir
from alertline.model import Decision

HEADER = 10  # C3 01 + 8-byte fingerprint


class Splicer:
    def __init__(self, directory: Path | None = None) -> None:
        schemas = load_sources(directory or schemas_dir())
        evaluated = schemas["decision"]
        fields = [f["name"] for f in evaluated["fields"]]
        if fields != ["alert", "decision"]:
            raise ValueError(f"EvaluatedAlert fields changed ({fields}); splicing assumes [alert, decision]")
        self.alert_prefix = MAGIC + fingerprint_of(schemas["alert"])
        self.out_prefix = MAGIC + fingerprint_of(evaluated)
        self._decision = parse_schema(evaluated["fields"][1]["type"], _force=True)

    def splice(self, alert_bytes: bytes, decision: Decision) -> bytes | None:
        """The EvaluatedAlert record, or None when the input is not in the current alert schema."""
        if alert_bytes[:HEADER] != self.alert_prefix:
            return None
        buf = io.BytesIO()
        buf.write(self.out_prefix)
        buf.write(memoryview(alert_bytes)[HEADER:])
        fastavro.schemaless_writer(buf, self._decision, decision)
        return buf.getvalue()
