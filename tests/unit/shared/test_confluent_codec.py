"""The Confluent wire format through confluent-kafka's real serializers and a registry fake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alertline.avro import ConfluentCodec
from alertline.errors import DecodeError
from alertline.testing.samples import alert
from devtools.schema_registry_fake import SchemaRegistryFake


@pytest.fixture
def registry() -> Iterator[SchemaRegistryFake]:
    r = SchemaRegistryFake().start()
    yield r
    r.stop()


def test_alert_round_trips_in_confluent_wire_format(registry: SchemaRegistryFake) -> None:
    codec = ConfluentCodec(registry.url)
    a = alert(5)
    data = codec.encode("alert", a, topic="alertline.alerts.v1")
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") >= 1
    assert "alertline.alerts.v1-value" in registry.subjects
    assert ConfluentCodec(registry.url).decode("alert", data, topic="alertline.alerts.v1") == a


def test_confluent_decoder_rejects_single_object_bytes_clearly(registry: SchemaRegistryFake) -> None:
    codec = ConfluentCodec(registry.url)
    with pytest.raises(DecodeError, match="not Confluent wire format"):
        codec.decode("alert", b"\xc3\x01" + bytes(20))
    with pytest.raises(DecodeError, match="corrupt"):
        codec.decode("alert", b"\x00\x00\x00\x00\x63" + bytes(5))
