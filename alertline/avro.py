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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import fastavro
import msgspec
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


# ---------------------------------------------------------------- fast writer
# fastavro's Cython writer spends most of an alert's encode time choosing union branches (it
# validates the value against each branch) and dispatching on the schema per field.
# ``compile_writer`` turns a parsed schema into straight-line Python (one function per
# record type) that writes the common, unambiguous values -- str (and subclasses), and
# exactly int, bool, float, bytes, dict, list, aware datetime; unions of null and one other
# type -- byte for byte as fastavro does. Anything else raises ``_Unsure`` (or a TypeError)
# and that record is written by fastavro instead, so fastavro's output and errors stay the
# reference.
#
# The output is collected as text pieces in which every character stands for one byte
# (Latin-1), joined and encoded once at the end: ASCII strings -- nearly all of them -- go in
# as they are, without an encode and a bytes object each.
Writer = Callable[[list[str], Any], None]
_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT64 = (-(1 << 63), (1 << 63) - 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class _Unsure(Exception):
    """The fast writer does not handle this value exactly as fastavro would: use fastavro."""


# What a compiled writer raises on a value outside its exact domain (a missing field is a
# KeyError: fastavro applies defaults; a value of another type where a string goes is a
# TypeError; a lone surrogate fails to encode: fastavro decides).
_FALL_BACK = (_Unsure, KeyError, TypeError, UnicodeEncodeError)


def _long(n: int) -> str:
    """Zig-zag variable-length long (as Latin-1 text); the caller has checked the 64-bit range."""
    z = (n << 1) ^ (n >> 63)
    if 0x7FFFFFFFF < z <= 0x3FFFFFFFFFF:  # six bytes: millisecond times from mid-1970 to 2039
        return bytes(
            (
                z & 0x7F | 0x80,
                z >> 7 & 0x7F | 0x80,
                z >> 14 & 0x7F | 0x80,
                z >> 21 & 0x7F | 0x80,
                z >> 28 & 0x7F | 0x80,
                z >> 35,
            )
        ).decode("latin-1")
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return out.decode("latin-1")


# The encoded lengths (and small non-negative ints) most values have, ready-made.
_LENGTHS = tuple(_long(n) for n in range(4096))


def _int_code(lo: int, hi: int) -> list[str]:
    return [
        "if type({x}) is not int:",
        "    raise _Unsure",
        "if 0 <= {x} < 4096:",
        "    out.append(_LENGTH[{x}])",
        f"elif {lo} <= {{x}} <= {hi}:",
        "    out.append(_long({x}))",
        "else:",
        "    raise _Unsure",
    ]


# Code writing a primitive held in ``{x}`` (checks first, so a wrong type falls back).
_PRIMITIVE_CODE: dict[str, list[str]] = {
    "null": ["if {x} is not None:", "    raise _Unsure"],
    "boolean": [
        "if {x} is True:",
        "    out.append('\\x01')",
        "elif {x} is False:",
        "    out.append('\\x00')",
        "else:",
        "    raise _Unsure",
    ],
    "int": _int_code(*_INT32),
    "long": _int_code(*_INT64),
    "double": ["if type({x}) is not float:", "    raise _Unsure", "out.append(_DOUBLE({x}).decode('latin-1'))"],
    "bytes": [
        "if type({x}) is not bytes:",
        "    raise _Unsure",
        "out += (_LENGTH[len({x})] if len({x}) < 4096 else _long(len({x})), {x}.decode('latin-1'))",
    ],
}
# A timestamp-millis: an aware datetime or an int, as fastavro takes them (a naive datetime
# is local time to fastavro: it decides).
_TIMESTAMP_MILLIS_CODE = [
    "if type({x}) is _datetime and {x}.tzinfo is not None:",
    "    {x} = ({x} - _EPOCH) // _MILLISECOND",
    "elif type({x}) is not int:",
    "    raise _Unsure",
    "if 0x3FFFFFFFF < {x} <= 0x1FFFFFFFFFF:  # mid-1970 to 2039: six bytes, a piece each",
    "    {x} <<= 1",
    "    out += (_MORE[{x} & 0x7F], _MORE[{x} >> 7 & 0x7F], _MORE[{x} >> 14 & 0x7F], _MORE[{x} >> 21 & 0x7F],"
    " _MORE[{x} >> 28 & 0x7F], _LAST[{x} >> 35])",
    f"elif {_INT64[0]} <= {{x}} <= {_INT64[1]}:",
    "    out.append(_long({x}))",
    "else:",
    "    raise _Unsure",
]


class _Gen:
    """Generates the writer source: ``emit(schema, var)`` writes the value held in ``var``."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.functions: dict[str, str] = {}  # full name -> function name
        self.sources: list[str] = []
        self.consts: dict[str, Any] = {}
        self.n = 0

    def var(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def function(self, full: str, body: list[str]) -> str:
        fn = self.functions[full]
        self.sources.append(f"def {fn}(out, v):\n" + "".join(f"    {line}\n" for line in body))
        return fn

    def named_type(self, s: Mapping[str, Any]) -> str:
        """The name of the function writing named type ``s`` (generated once per type)."""
        full = s["name"]
        if full in self.functions:
            return self.functions[full]
        t = s["type"]
        if t not in ("record", "enum", "fixed"):
            raise _Unsure
        self.functions[full] = self.var(f"_{t}")
        if t == "record":
            body = ["if type(v) is not dict:", "    raise _Unsure"]
            for f in s["fields"]:
                x = self.var("x")
                body.append(f"{x} = v[{f['name']!r}]")
                body += self.emit(f["type"], x)
            return self.function(full, body)
        if t == "enum":
            index = self.const({sym: i for i, sym in enumerate(s["symbols"])})
            body = [
                f"if type(v) is not str or v not in {index}:",
                "    raise _Unsure",
                f"out.append(_long({index}[v]))",
            ]
            return self.function(full, body)
        if t == "fixed":
            size = int(s["size"])
            body = [
                f"if type(v) is not bytes or len(v) != {size}:",
                "    raise _Unsure",
                "out.append(v.decode('latin-1'))",
            ]
            return self.function(full, body)
        raise _Unsure

    def const(self, value: Any) -> str:
        name = self.var("_c")
        self.consts[name] = value
        return name

    def text(self, x: str) -> tuple[list[str], str]:
        """A string held in ``x``: the lines preparing it, and the tuple items (length, text)
        to append, so a caller can join them with its own in one ``out +=``. str.isascii
        refuses anything but a str (TypeError: fastavro decides), in the same call."""
        n = self.var("n")
        prepare = [f"if not _isascii({x}):", f"    {x} = {x}.encode().decode('latin-1')  # UTF-8, a character a byte"]
        return prepare, f"_LENGTH[{n}] if ({n} := len({x})) < 4096 else _long({n}), {x}"

    def emit(self, s: Any, x: str) -> list[str]:
        if s == "string":
            prepare, items = self.text(x)
            return [*prepare, f"out += ({items})"]
        if isinstance(s, str):
            if s in _PRIMITIVE_CODE:
                return [line.format(x=x) for line in _PRIMITIVE_CODE[s]]
            if s in self.named:
                return [f"{self.named_type(self.named[s])}(out, {x})"]
            raise _Unsure
        if isinstance(s, list):
            return self.union(s, x)
        if not isinstance(s, dict):
            raise _Unsure
        t = s.get("type")
        if not isinstance(t, str):
            raise _Unsure
        logical = s.get("logicalType")
        if logical is not None:
            if logical == "timestamp-millis" and t == "long":
                return [line.format(x=x) for line in _TIMESTAMP_MILLIS_CODE]
            raise _Unsure
        if t in _PRIMITIVE_CODE or t == "string":
            return self.emit(t, x)
        if t in ("record", "enum", "fixed"):
            return [f"{self.named_type(s)}(out, {x})"]
        if t == "array":
            y = self.var("y")
            return [
                f"if type({x}) is not list:",
                "    raise _Unsure",
                f"if {x}:",
                f"    out.append(_LENGTH[len({x})] if len({x}) < 4096 else _long(len({x})))",
                f"    for {y} in {x}:",
                *(f"        {line}" for line in self.emit(s["items"], y)),
                "out.append('\\x00')",
            ]
        if t == "map":
            k, y = self.var("k"), self.var("y")
            key_prepare, key_items = self.text(k)
            if s["values"] == "string":  # the usual string map: one append per entry
                value_prepare, value_items = self.text(y)
                entry = [*key_prepare, *value_prepare, f"out += ({key_items}, {value_items})"]
            else:
                entry = [*key_prepare, f"out += ({key_items})", *self.emit(s["values"], y)]
            return [
                f"if type({x}) is not dict:",
                "    raise _Unsure",
                f"if {x}:",
                f"    out.append(_LENGTH[len({x})] if len({x}) < 4096 else _long(len({x})))",
                f"    for {k}, {y} in {x}.items():",
                *(f"        {line}" for line in entry),
                "out.append('\\x00')",
            ]
        raise _Unsure

    def union(self, branches: list[Any], x: str) -> list[str]:
        # Only null + one other type: a value is then None or must be the other branch,
        # whatever order fastavro tries them in.
        if len(branches) != 2 or "null" not in branches or branches[0] == branches[1]:
            raise _Unsure
        null_index = branches.index("null")
        other, tag = branches[1 - null_index], repr(chr((1 - null_index) << 1))
        if other == "string":  # the usual optional string: tag, length and text in one append
            prepare, items = self.text(x)
            value = [*prepare, f"out += ({tag}, {items})"]
        else:
            value = [f"out.append({tag})", *self.emit(other, x)]
        return [
            f"if {x} is None:",
            f"    out.append({chr(null_index << 1)!r})",
            "else:",
            *(f"    {line}" for line in value),
        ]


def compile_writer(schema: Any) -> Writer | None:
    """A fast writer for a schema parsed by fastavro (``parse_schema``), or None when the
    schema uses something it does not cover (then fastavro writes every record). The writer
    appends Latin-1 text pieces to a list: ``"".join(out).encode("latin-1")`` is the body."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    gen = _Gen(schema.get("__named_schemas", {}))
    try:
        top = gen.named_type(schema)
    except _Unsure:
        return None
    namespace: dict[str, Any] = {
        "_Unsure": _Unsure,
        "_long": _long,
        "_isascii": str.isascii,
        "_LENGTH": _LENGTHS,
        "_MORE": tuple(chr(b | 0x80) for b in range(128)),  # a varint byte with more to come
        "_LAST": tuple(chr(b) for b in range(128)),
        "_datetime": datetime,
        "_EPOCH": _EPOCH,
        "_MILLISECOND": _MILLISECOND,
        "_DOUBLE": struct.Struct("<d").pack,
        **gen.consts,
    }
    exec(compile("".join(gen.sources), f"<avro writer for {schema['name']}>", "exec"), namespace)  # noqa: S102
    writer: Writer = namespace[top]
    return writer


@dataclass(frozen=True)
class _Known:
    name: str
    parsed: Any


class Codec(Protocol):
    def encode(self, name: str, value: Mapping[str, Any] | LazyValue, topic: str = "") -> bytes: ...

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
        self._fast: dict[str, Writer | None] = {}
        self._prefix: dict[str, bytes] = {}
        self._prefix_text: dict[str, str] = {}
        self._by_fp: dict[bytes, _Known] = {}
        for name, schema in current.items():
            parsed = parse_schema(schema, _force=True)
            fp = fingerprint_of(schema)
            self._writers[name] = parsed
            self._fast[name] = compile_writer(parsed)
            self._prefix[name] = MAGIC + fp
            self._prefix_text[name] = self._prefix[name].decode("latin-1")
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

    def encode(self, name: str, value: Mapping[str, Any] | LazyValue, topic: str = "") -> bytes:
        if isinstance(value, LazyValue):
            raw = value.unread_bytes(name)
            if raw is not None:
                return raw
            value = value.decoded()
        fast = self._fast.get(name)
        if fast is not None:
            out = [self._prefix_text[name]]
            try:
                fast(out, value)
            except _FALL_BACK:
                pass  # fastavro below writes it, or raises its own error
            else:
                return "".join(out).encode("latin-1")
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
        return self.lazy_reader(name, topic)(data)

    def lazy_reader(self, name: str, topic: str = "") -> LazyReader:
        """``lazy`` for one schema and topic, with what it needs looked up once (the runtime's
        hot loop reads per record)."""
        self.schema(name)
        return LazyReader(self, name, self._prefix[name], _LazySource(self, name, topic, True),
                          _LazySource(self, name, topic, False))  # fmt: skip

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


@dataclass(frozen=True, slots=True)
class _LazySource:
    """What every ``LazyValue`` of one schema, topic and writer version shares."""

    codec: SingleObjectCodec
    name: str
    topic: str
    current: bool  # written with this build's version of schema ``name``


@dataclass(frozen=True, slots=True)
class LazyReader:
    """Makes the ``LazyValue``s of one schema and topic. A value that starts with ``prefix`` (this
    build's writer) is ``LazyValue(current, data)``: the runtime's hot loop makes that check
    itself and calls the reader only for the rest (another writer version, or a bad header)."""

    codec: SingleObjectCodec
    name: str
    prefix: bytes
    current: _LazySource
    other: _LazySource

    def __call__(self, data: bytes) -> LazyValue:
        if data.startswith(self.prefix):
            return LazyValue(self.current, data)
        self.codec._known(self.name, data)
        return LazyValue(self.other, data)


_FAILED: dict[str, Any] = {}  # a LazyValue whose decode raised (compared by identity)


class LazyValue(msgspec.Struct, gc=False):
    """A single-object encoded record whose body is decoded on first use.

    The runtime hands these to handlers as ``Record.value`` (header already checked). Any
    read decodes the whole body (a corrupt body raises ``DecodeError`` there, inside the
    handler, so the record is dead-lettered with its cause). A value that was never read and
    is written back under the same schema, in this build's version, keeps its original bytes:
    unread means unmodified. A body forwarded that way is not checked here; the next stage
    that reads it dead-letters it if it is corrupt (decision 0010).

    It is a read-only ``Mapping`` (registered as one), not a ``dict``: code that needs a real
    dict calls ``dict()`` on it (or ``copy()``). It is a msgspec Struct because the runtime
    makes one per record, and a Struct is made in half the time of a slotted class.
    """

    _src: _LazySource
    _data: bytes
    # None: never read; _FAILED: a read failed (such bytes are never reused); else the value.
    _value: dict[str, Any] | None = None

    def decoded(self) -> dict[str, Any]:
        v = self._value
        if v is None or v is _FAILED:
            self._value = _FAILED
            src = self._src
            v = self._value = src.codec.decode(src.name, self._data, src.topic)
        return v

    def unread_bytes(self, name: str) -> bytes | None:
        """The original bytes, if nobody read the value and they are ``name`` in this build's version."""
        src = self._src
        if self._value is not None or not src.current or name != src.name:
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

    def __ne__(self, other: object) -> bool:  # msgspec.Struct's own __ne__ compares fields
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self._value is None or self._value is _FAILED:
            return f"LazyValue({self._src.name!r}, {len(self._data)} bytes, not decoded)"
        return repr(self._value)


Mapping.register(LazyValue)


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

    def encode(self, name: str, value: Mapping[str, Any] | LazyValue, topic: str = "") -> bytes:
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
