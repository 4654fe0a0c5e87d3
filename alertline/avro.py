"""Avro codec for the contracts in ``schemas/``.

Default wire format: Avro single-object encoding — ``C3 01``, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema's parsing canonical form, then the body. The
writer schema is found by fingerprint among the shipped schemas (current and every released
version under ``schemas/released/``) and resolved to the reader's current version, so a
newer reader reads older records and an older reader reads newer ones.

When a Schema Registry URL is configured, ``ConfluentCodec`` speaks the Confluent wire format
(``00`` + 4-byte schema id + body) through confluent-kafka's serializers instead.
"""

from __future__ import annotations

import copy
import io
import json
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from alertline.errors import ConfigError, DecodeError

MAGIC = b"\xc3\x01"
_HEADER = struct.Struct("<2s8s")
SCHEMA_NAMES = ("alert", "decision", "enrichment", "ticket_state", "ticket_event", "dead_letter", "evaluate_state")


def schemas_dir() -> Path:
    env = os.environ.get("ALERTLINE_SCHEMAS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "schemas"


def _named_types(schema: Any, out: dict[str, Any], namespace: str | None = None) -> None:
    """Collect every named type a schema defines, by full name."""
    if isinstance(schema, list):
        for s in schema:
            _named_types(s, out, namespace)
    elif isinstance(schema, dict):
        t = schema.get("type")
        if t in ("record", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            name = schema["name"]
            full = name if "." in name or not ns else f"{ns}.{name}"
            out[full] = schema
            if t == "record":
                for f in schema["fields"]:
                    _named_types(f["type"], out, ns)
        elif t == "array":
            _named_types(schema["items"], out, namespace)
        elif t == "map":
            _named_types(schema["values"], out, namespace)


def expand(schema: Any, definitions: Mapping[str, Any]) -> Any:
    """Inline references to types defined in other files, so each schema stands alone.

    The first use of a foreign name gets its definition; later uses keep the name, as Avro
    requires. The result has a fingerprint that changes whenever anything it depends on does.
    """
    seen: set[str] = set()
    _named_types(schema, {})  # validates structure early

    def walk(s: Any, ns: str | None) -> Any:
        if isinstance(s, str):
            full = s if "." in s else (f"{ns}.{s}" if ns else s)
            if full in definitions and full not in seen:
                seen.add(full)
                d = copy.deepcopy(definitions[full])
                d.setdefault("namespace", full.rsplit(".", 1)[0])
                d["name"] = full.rsplit(".", 1)[1]
                return walk_def(d, d["namespace"])
            return s
        if isinstance(s, list):
            return [walk(x, ns) for x in s]
        if isinstance(s, dict):
            t = s.get("type")
            if t in ("record", "enum", "fixed"):
                name = s["name"]
                ns2 = s.get("namespace", ns)
                seen.add(name if "." in name else f"{ns2}.{name}")
                return walk_def(s, ns2)
            if t == "array":
                return {**s, "items": walk(s["items"], ns)}
            if t == "map":
                return {**s, "values": walk(s["values"], ns)}
            if isinstance(t, (dict, list, str)):
                return {**s, "type": walk(t, ns)}
        return s

    def walk_def(d: dict[str, Any], ns: str | None) -> dict[str, Any]:
        if d["type"] != "record":
            return d
        return {**d, "fields": [{**f, "type": walk(f["type"], ns)} for f in d["fields"]]}

    return walk(schema, None)


def load_sources(directory: Path) -> dict[str, Any]:
    """Read ``<name>.avsc`` files and return each fully expanded, by file stem."""
    raw = {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.avsc"))}
    return expand_all(raw)


def expand_all(raw: Mapping[str, Any]) -> dict[str, Any]:
    definitions: dict[str, Any] = {}
    for s in raw.values():
        _named_types(s, definitions)
    return {stem: expand(s, definitions) for stem, s in raw.items()}


def fingerprint_of(schema: Any) -> bytes:
    parsed = parse_schema(schema, _write_hint=False, _force=True)
    canonical = to_parsing_canonical_form(parsed)
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))  # fastavro gives the little-endian bytes


@dataclass(frozen=True)
class _Known:
    name: str
    parsed: Any


class Codec(Protocol):
    def encode(self, name: str, value: Mapping[str, Any], topic: str = "") -> bytes: ...

    def decode(self, name: str, data: bytes, topic: str = "") -> Any: ...


class SingleObjectCodec:
    """Avro single-object encoding, resolved against the shipped schemas."""

    def __init__(self, directory: Path | None = None, lookup: Callable[[bytes], str | None] | None = None) -> None:
        """``lookup`` finds writer schemas this build does not ship (a newer producer's), by
        fingerprint: e.g. from the compacted schemas topic every writer publishes to."""
        directory = directory or schemas_dir()
        self._lookup = lookup
        current = load_sources(directory)
        if not current:
            raise ConfigError(f"no Avro schemas found in {directory}")
        self._sources = current
        self._writers: dict[str, Any] = {}
        self._prefix: dict[str, bytes] = {}
        self._by_fp: dict[bytes, _Known] = {}
        for name, schema in current.items():
            parsed = parse_schema(schema, _force=True)
            fp = fingerprint_of(schema)
            self._writers[name] = parsed
            self._prefix[name] = MAGIC + fp
            self._by_fp[fp] = _Known(name, parsed)
        released = directory / "released"
        if released.is_dir():
            for p in sorted(released.glob("*.avsc")):
                schema = json.loads(p.read_text())
                fp = fingerprint_of(schema)
                self._by_fp.setdefault(fp, _Known(p.name.split(".", 1)[0], parse_schema(schema, _force=True)))

    def schema(self, name: str) -> Any:
        try:
            return self._writers[name]
        except KeyError:
            raise ConfigError(f"unknown schema {name!r}; known: {sorted(self._writers)}") from None

    def writer_schemas(self) -> dict[str, str]:
        """fingerprint (hex) -> schema JSON of what this build writes, for publication."""
        return {self._prefix[n][2:].hex(): json.dumps(self._sources[n], separators=(",", ":")) for n in self._writers}

    def _look_up(self, fp: bytes, name: str) -> _Known | None:
        if self._lookup is None:
            return None
        text = self._lookup(fp)
        if text is None:
            return None
        try:
            schema = json.loads(text)
            if fingerprint_of(schema) != fp:
                raise DecodeError(f"schema published under fingerprint {fp.hex()} does not match it")
            known = _Known(name, parse_schema(schema, _force=True))
        except (ValueError, fastavro.schema.SchemaParseException) as exc:
            raise DecodeError(f"unusable writer schema for fingerprint {fp.hex()}: {exc}") from exc
        self._by_fp[fp] = known
        return known

    def encode(self, name: str, value: Mapping[str, Any], topic: str = "") -> bytes:
        if isinstance(value, LazyValue):
            raw = value.unread_bytes(name)
            if raw is not None:
                return raw
            value = value.decoded()
        buf = io.BytesIO()
        buf.write(self._prefix[name])
        fastavro.schemaless_writer(buf, self.schema(name), value)
        return buf.getvalue()

    def _known(self, name: str, data: bytes) -> _Known:
        if len(data) < 10 or data[:2] != MAGIC:
            raise DecodeError(f"not Avro single-object encoding (expected C3 01, got {data[:2].hex() or 'empty'})")
        fp = data[2:10]
        known = self._by_fp.get(fp) or self._look_up(fp, name)
        if known is None:
            raise DecodeError(f"unknown writer schema fingerprint {fp[::-1].hex()} for {name!r}")
        return known

    def lazy(self, name: str, data: bytes, topic: str = "") -> LazyValue:
        """Check the header now (magic, a known writer schema); decode the body on first use."""
        prefix = self._prefix.get(name)
        if prefix is not None and data.startswith(prefix):  # this build's writer: the common case
            return LazyValue(self, name, data, topic, True)
        self.schema(name)
        self._known(name, data)
        return LazyValue(self, name, data, topic, False)

    def decode(self, name: str, data: bytes, topic: str = "") -> Any:
        reader = self.schema(name)
        known = self._known(name, data)
        buf = io.BytesIO(data)
        buf.seek(10)
        try:
            if known.parsed is reader:
                value = fastavro.schemaless_reader(buf, reader, None)
            else:
                value = fastavro.schemaless_reader(buf, known.parsed, reader)
        except (EOFError, StopIteration, ValueError, IndexError, UnicodeDecodeError, struct.error) as exc:
            raise DecodeError(f"corrupt {name!r} payload: {type(exc).__name__}: {exc}") from exc
        except fastavro.read.SchemaResolutionError as exc:
            raise DecodeError(f"writer schema {known.name!r} cannot be read as {name!r}: {exc}") from exc
        if buf.tell() != len(data):
            raise DecodeError(f"corrupt {name!r} payload: {len(data) - buf.tell()} trailing bytes")
        return value


class LazyValue(Mapping[str, Any]):
    """A single-object encoded record whose body is decoded on first use.

    The runtime hands these to handlers as ``Record.value`` (header already checked). Any
    read decodes the whole body (a corrupt body raises ``DecodeError`` there, inside the
    handler, so the record is dead-lettered with its cause). A value that was never read and
    is written back under the same schema, in this build's version, keeps its original bytes:
    unread means unmodified. A body forwarded that way is not checked here; the next stage
    that reads it dead-letters it if it is corrupt (decision 0010).

    It is a read-only ``Mapping``, not a ``dict``: code that needs a real dict calls ``dict()``
    on it (or ``copy()``).
    """

    __slots__ = ("_codec", "_current", "_data", "_name", "_read", "_topic", "_value")

    def __init__(self, codec: SingleObjectCodec, name: str, data: bytes, topic: str, current: bool) -> None:
        """``current``: ``data`` was written with this build's version of schema ``name``."""
        self._codec = codec
        self._name = name
        self._data = data
        self._topic = topic
        self._current = current
        self._value: dict[str, Any] | None = None
        self._read = False

    def decoded(self) -> dict[str, Any]:
        v = self._value
        if v is None:
            self._read = True  # even a failed decode: such bytes are never reused
            v = self._value = self._codec.decode(self._name, self._data, self._topic)
        return v

    def unread_bytes(self, name: str) -> bytes | None:
        """The original bytes, if nobody read the value and they are ``name`` in this build's version."""
        if self._read or not self._current or name != self._name:
            return None
        return self._data

    @property
    def raw(self) -> bytes:
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self.decoded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.decoded())

    def __len__(self) -> int:
        return len(self.decoded())

    def __contains__(self, key: object) -> bool:
        return key in self.decoded()

    def get(self, key: str, default: Any = None) -> Any:
        return self.decoded().get(key, default)

    def keys(self) -> Any:
        return self.decoded().keys()

    def items(self) -> Any:
        return self.decoded().items()

    def values(self) -> Any:
        return self.decoded().values()

    def copy(self) -> dict[str, Any]:
        return self.decoded().copy()

    def __copy__(self) -> dict[str, Any]:
        return self.decoded().copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(self.decoded(), memo)

    def __or__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.decoded(), **other}

    def __ror__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        return {**other, **self.decoded()}

    def __eq__(self, other: object) -> bool:
        return self.decoded() == (other.decoded() if isinstance(other, LazyValue) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self._value is None:
            return f"LazyValue({self._name!r}, {len(self._data)} bytes, not decoded)"
        return repr(self._value)


class ConfluentCodec:
    """Confluent wire format through a Schema Registry (confluent-kafka's serializers)."""

    def __init__(self, registry_url: str, directory: Path | None = None, auth: str | None = None) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

        conf: dict[str, Any] = {"url": registry_url}
        if auth:
            conf["basic.auth.user.info"] = auth
        self._client = SchemaRegistryClient(conf)
        self._schemas = load_sources(directory or schemas_dir())
        self._ser = {
            n: AvroSerializer(self._client, json.dumps(s), conf={"auto.register.schemas": True})
            for n, s in self._schemas.items()
        }
        self._de = {n: AvroDeserializer(self._client, json.dumps(s)) for n, s in self._schemas.items()}

    def encode(self, name: str, value: Mapping[str, Any], topic: str = "") -> bytes:
        from confluent_kafka.serialization import MessageField, SerializationContext

        out = self._ser[name](dict(value), SerializationContext(topic, MessageField.VALUE))
        assert out is not None
        return bytes(out)

    def decode(self, name: str, data: bytes, topic: str = "") -> Any:
        from confluent_kafka.serialization import MessageField, SerializationContext

        if len(data) < 5 or data[0] != 0:
            raise DecodeError("not Confluent wire format (expected magic byte 00)")
        try:
            return self._de[name](data, SerializationContext(topic, MessageField.VALUE))
        except Exception as exc:
            raise DecodeError(f"corrupt {name!r} payload: {type(exc).__name__}: {exc}") from exc


def make_codec(registry_url: str | None = None, auth: str | None = None) -> Codec:
    if registry_url:
        return ConfluentCodec(registry_url, auth=auth)
    return SingleObjectCodec()
