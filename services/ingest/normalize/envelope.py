"""Delivery shapes: bytes as a transport hands them -> the findings inside, in order.

Accepted (nested in any sensible combination, up to ``MAX_DEPTH`` envelopes):
- gzip (by magic bytes), one JSON document, a JSON array, newline-delimited or concatenated JSON;
- EventBridge events (``Security Hub Findings - Imported``/``- Custom Action``,
  ``Findings Imported V2``, ``GuardDuty Finding``);
- a Lambda-style SQS or SNS event (``Records[].body`` / ``Records[].Sns.Message``), an SNS
  notification (``Message`` as a string);
- a Pub/Sub push body (``message.data`` base64), a pull response (``receivedMessages[]``),
  or the decoded SCC ``NotificationMessage`` (also ``listFindingsResults[]``);
- Event Hubs bodies: one Defender alert, a bare array, a ``{"records": [...]}`` wrapper;
- bare findings: ASFF (also ``{"Findings": [...]}``), GuardDuty, OCSF, Defender (flat or REST).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from typing import Any, NamedTuple

import orjson

from alertline.errors import NormalizeError

MAX_DEPTH = 8
MAX_DECOMPRESSED = 256 * 1024 * 1024
MAX_BAD_LINES = 1000
GZIP_MAGIC = b"\x1f\x8b"

ASFF = "asff"
GUARDDUTY = "guardduty"
OCSF = "ocsf"
SCC = "scc"
DEFENDER = "defender"

_ASFF_DETAIL_TYPES = frozenset({"Security Hub Findings - Imported", "Security Hub Findings - Custom Action"})
_WS = re.compile(r"[ \t\r\n]*")


class Item(NamedTuple):
    """One slot in the delivery: a finding of a known kind, or the reason it is not one."""

    kind: str | None
    value: Any
    where: str
    problem: str | None = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def gunzip(data: bytes) -> bytes:
    """Every gzip member, bounded in size (a small object must not become gigabytes)."""
    out: list[bytes] = []
    total = 0
    while data:
        d = zlib.decompressobj(wbits=31)
        try:
            chunk = d.decompress(data, MAX_DECOMPRESSED - total + 1)
        except zlib.error as exc:
            raise NormalizeError(f"gzip: corrupt stream ({exc})") from exc
        total += len(chunk)
        if total > MAX_DECOMPRESSED:
            raise NormalizeError(f"gzip: decompresses to more than {MAX_DECOMPRESSED} bytes")
        if not d.eof:
            raise NormalizeError("gzip: truncated stream")
        out.append(chunk)
        data = d.unused_data
        if data and not data.startswith(GZIP_MAGIC):
            if data.strip(b"\x00"):
                raise NormalizeError(f"gzip: {len(data)} bytes of trailing garbage after the last member")
            break
    return b"".join(out)


def documents(body: bytes) -> list[Any | Item]:
    """The JSON documents in a delivery. orjson reads the common case (one valid document)
    fast; anything it refuses goes to the standard parser, which explains the problem with a
    line and column, reads newline-delimited or concatenated documents, and tolerates what
    JSON allows but orjson does not (lone surrogate escapes, integers beyond 64 bits)."""
    if body[:2] == GZIP_MAGIC:
        body = gunzip(body)
    if body[:3] == b"\xef\xbb\xbf":
        body = body[3:]
    try:
        return [orjson.loads(body)]
    except orjson.JSONDecodeError:
        pass
    if b"}{" in body:
        docs = _concatenated(body)
        if docs is not None:
            return docs
    if b"\n" in body:
        docs = _lines(body)
        if docs is not None:
            return docs
    return parse_text(to_text(body))


def _lines(body: bytes) -> list[Any] | None:
    """Newline-delimited JSON read by orjson line by line, blank lines skipped, as ``_stream``
    reads it; None when a line does not parse on its own (a document spread over lines, or a
    bad line: the standard path decides and explains) or when no line holds an object or array
    (not a delivery)."""
    try:
        docs = [orjson.loads(line) for line in body.split(b"\n") if line.strip(b" \t\r")]
    except orjson.JSONDecodeError:
        return None
    return docs if any(isinstance(d, (dict, list)) for d in docs) else None


_DIGITS = bytes(0x39 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))  # digits -> "9", rest -> "."
_LONG_NUMBER = b"9" * 19


def _concatenated(body: bytes) -> list[Any] | None:
    """Objects written back to back (``{...}{...}``, as Firehose writes them to S3), read by
    orjson; None when any piece does not parse. ``}{`` outside a string only occurs between
    documents, and a cut inside a string leaves that piece with an open string, which never
    parses, so when every piece parses the cuts were the document boundaries.

    orjson reads an integer beyond 64 bits as a float where the standard parser, which reads
    such objects otherwise, keeps it exact: a body with 19 digits in a row goes that way."""
    if _LONG_NUMBER in body.translate(_DIGITS):
        return None
    pieces = body.split(b"}{")
    last = len(pieces) - 1
    try:
        return [
            orjson.loads((b"" if i == 0 else b"{") + p + (b"" if i == last else b"}")) for i, p in enumerate(pieces)
        ]
    except orjson.JSONDecodeError:
        return None


def to_text(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NormalizeError(f"not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    if not text.strip():
        raise NormalizeError("empty delivery")
    return text


def parse_text(text: str) -> list[Any | Item]:
    """JSON documents in ``text``: one, or several (newline-delimited or concatenated).
    A bad line among good ones becomes an ``Item`` with its problem."""
    try:
        return [_DECODER.decode(text)]
    except RecursionError as exc:
        raise NormalizeError("malformed JSON: nested too deeply") from exc
    except ValueError as exc:
        first = exc
    docs = _stream(text)
    if not any(isinstance(d, dict | list) for d in docs):
        msg = first.msg if isinstance(first, json.JSONDecodeError) else str(first)
        where = f" at line {first.lineno} column {first.colno}" if isinstance(first, json.JSONDecodeError) else ""
        raise NormalizeError(f"malformed JSON{where}: {msg}") from first
    return docs


def _stream(text: str) -> list[Any | Item]:
    out: list[Any | Item] = []
    bad = 0
    pos = _WS.match(text, 0).end()  # type: ignore[union-attr]
    n = len(text)
    while pos < n:
        nl = text.find("\n", pos)
        try:  # newline-delimited: one document per line, read by orjson
            value = orjson.loads(text[pos : nl if nl >= 0 else n])
        except orjson.JSONDecodeError:
            pass  # concatenated documents, or a bad line: the standard parser decides
        else:
            out.append(value)
            pos = n if nl < 0 else _WS.match(text, nl).end()  # type: ignore[union-attr]
            continue
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except RecursionError as exc:
            raise NormalizeError("malformed JSON: nested too deeply") from exc
        except ValueError as exc:
            line = text.count("\n", 0, pos) + 1
            out.append(Item(None, None, f"line {line}", f"line {line}: malformed JSON: {getattr(exc, 'msg', exc)}"))
            bad += 1
            if bad > MAX_BAD_LINES:
                raise NormalizeError(f"malformed JSON: more than {MAX_BAD_LINES} bad lines") from exc
            nl = text.find("\n", pos)
            if nl < 0:
                break
            pos = _WS.match(text, nl).end()  # type: ignore[union-attr]
            continue
        out.append(value)
        pos = _WS.match(text, end).end()  # type: ignore[union-attr]
    return out


def _nested(text: Any, where: str) -> Any:
    """A JSON document carried as a string inside another (SQS body, SNS Message)."""
    if not isinstance(text, str):
        raise _Problem(f"{where}: expected a string holding JSON, got a {type(text).__name__}")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass  # the standard parser gives the precise reason, or accepts it
    try:
        return _DECODER.decode(text)
    except RecursionError as exc:
        raise _Problem(f"{where}: malformed JSON: nested too deeply") from exc
    except ValueError as exc:
        raise _Problem(f"{where}: malformed JSON: {getattr(exc, 'msg', exc)}") from exc


def _b64json(data: Any, where: str) -> Any:
    if not isinstance(data, str):
        raise _Problem(f"{where}: expected a base64 string, got a {type(data).__name__}")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Problem(f"{where}: not valid base64 ({exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Problem(f"{where}: decoded data is not UTF-8 text") from exc
    return _nested(text, where)


class _Problem(Exception):
    pass


def findings(body: bytes) -> list[Item]:
    out: list[Item] = []
    for i, doc in enumerate(documents(body)):
        if isinstance(doc, Item):
            out.append(doc)
            continue
        _unwrap(doc, "" if i == 0 else f"document {i + 1}", 0, out)
    return out


def _join(where: str, sub: str) -> str:
    if not where:
        return sub
    return f"{where}{sub}" if sub.startswith("[") else f"{where}.{sub}"


def _at(where: str, msg: str) -> str:
    return f"{where or 'delivery'}: {msg}"


def _keys(v: dict[str, Any]) -> str:
    ks = [k for k in v if isinstance(k, str)][:8]
    return ", ".join(repr(k[:40]) for k in ks) or "none"


def _unwrap(v: Any, where: str, depth: int, out: list[Item]) -> None:
    try:
        _unwrap_inner(v, where, depth, out)
    except _Problem as exc:
        out.append(Item(None, None, where or "delivery", str(exc)))


def _unwrap_inner(v: Any, where: str, depth: int, out: list[Item]) -> None:
    if depth > MAX_DEPTH:
        raise _Problem(_at(where, f"envelopes nested deeper than {MAX_DEPTH}"))
    if isinstance(v, list):
        for i, x in enumerate(v):
            _unwrap(x, _join(where, f"[{i}]"), depth + 1, out)
        return
    if not isinstance(v, dict):
        raise _Problem(_at(where, f"expected a JSON object, got a {type(v).__name__}"))
    d = depth + 1
    # EventBridge event (also the raw SQS body of an EventBridge -> SQS target).
    if "detail-type" in v and "detail" in v:
        dt = v["detail-type"]
        detail = v["detail"]
        if isinstance(dt, str) and (dt in _ASFF_DETAIL_TYPES or dt == "Findings Imported V2"):
            fs = detail.get("findings") if isinstance(detail, dict) else None
            if not isinstance(fs, list):
                raise _Problem(_at(_join(where, "detail.findings"), "expected a list"))
            kind = OCSF if dt == "Findings Imported V2" else ASFF
            for i, f in enumerate(fs):
                out.append(Item(kind, f, _join(where, f"detail.findings[{i}]")))
            return
        if dt == "GuardDuty Finding":
            out.append(Item(GUARDDUTY, detail, _join(where, "detail")))
            return
        shown = dt[:80] if isinstance(dt, str) else type(dt).__name__
        raise _Problem(_at(where, f"unsupported EventBridge detail-type {shown!r}"))
    records = v.get("Records")
    if isinstance(records, list):
        for i, r in enumerate(records):
            w = _join(where, f"Records[{i}]")
            if not isinstance(r, dict):
                out.append(Item(None, None, w, _at(w, "expected an object")))
            elif r.get("eventSource") == "aws:s3" or "s3" in r:
                out.append(Item(None, None, w, _at(w, "S3 event notification; the object must be fetched first")))
            elif "Sns" in r:
                _unwrap_nested(get_str(r, "Sns", "Message"), f"{w}.Sns.Message", d, out)
            elif "body" in r:
                _unwrap_nested(r.get("body"), f"{w}.body", d, out)
            else:
                out.append(Item(None, None, w, _at(w, f"record without body (keys: {_keys(r)})")))
        return
    if v.get("Type") == "Notification" and "Message" in v and "TopicArn" in v:
        _unwrap_nested(v.get("Message"), _join(where, "Message"), d, out)
        return
    msg = v.get("message")
    if isinstance(msg, dict) and "data" in msg:
        _unwrap_b64(msg.get("data"), _join(where, "message.data"), d, out)
        return
    received = v.get("receivedMessages")
    if isinstance(received, list):
        for i, m in enumerate(received):
            w = _join(where, f"receivedMessages[{i}].message.data")
            _unwrap_b64(get_str(m, "message", "data") if isinstance(m, dict) else None, w, d, out)
        return
    if isinstance(v.get("finding"), dict):
        out.append(Item(SCC, v, where or "notification"))
        return
    if "SystemAlertId" in v or (
        isinstance(v.get("properties"), dict) and ("systemAlertId" in v["properties"] or "alertType" in v["properties"])
    ):
        out.append(Item(DEFENDER, v, where or "alert"))
        return
    records = v.get("records")
    if isinstance(records, list):
        _unwrap_inner(records, _join(where, "records"), d, out)
        return
    if "ProductArn" in v and "SchemaVersion" in v:
        out.append(Item(ASFF, v, where or "finding"))
        return
    fs = v.get("Findings")
    if isinstance(fs, list):
        for i, f in enumerate(fs):
            out.append(Item(ASFF, f, _join(where, f"Findings[{i}]")))
        return
    if "finding_info" in v and "metadata" in v:
        out.append(Item(OCSF, v, where or "finding"))
        return
    if "arn" in v and "service" in v and "schemaVersion" in v:
        out.append(Item(GUARDDUTY, v, where or "finding"))
        return
    lfr = v.get("listFindingsResults")
    if isinstance(lfr, list):
        for i, r in enumerate(lfr):
            out.append(Item(SCC, r, _join(where, f"listFindingsResults[{i}]")))
        return
    if v.get("Event") == "s3:TestEvent":
        raise _Problem(_at(where, "S3 test event; it holds no findings"))
    raise _Problem(_at(where, f"unknown delivery shape (keys: {_keys(v)})"))


def get_str(v: dict[str, Any], *path: str) -> Any:
    cur: Any = v
    for p in path:
        cur = cur.get(p) if isinstance(cur, dict) else None
    return cur


def _unwrap_nested(text: Any, where: str, depth: int, out: list[Item]) -> None:
    try:
        value = _nested(text, where)
    except _Problem as exc:
        out.append(Item(None, None, where, str(exc)))
        return
    _unwrap(value, where, depth, out)


def _unwrap_b64(data: Any, where: str, depth: int, out: list[Item]) -> None:
    try:
        value = _b64json(data, where)
    except _Problem as exc:
        out.append(Item(None, None, where, str(exc)))
        return
    _unwrap(value, where, depth, out)
