"""Reading inventory exports from a file or an S3-compatible bucket, and archiving raw results.

``s3://bucket/key`` reads one object; ``s3://bucket/prefix/`` (trailing slash) reads every
object under the prefix, in key order — a Cloud Asset Inventory export split into shards, or
one file per asset type, is one unit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from alertline.errors import ConfigError


class SourceError(Exception):
    """An export could not be read (missing, unreadable, too large)."""


def read_objects(uri: str, s3: Any | None, max_bytes: int) -> list[tuple[str, bytes]]:
    """``[(where, bytes), ...]`` of an export."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else uri)
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        out: list[tuple[str, bytes]] = []
        total = 0
        for p in paths:
            try:
                size = p.stat().st_size
                total += size
                if total > max_bytes:
                    raise SourceError(f"{uri}: larger than max_bytes={max_bytes}")
                out.append((str(p), p.read_bytes()))
            except OSError as exc:
                raise SourceError(f"{p}: {exc}") from exc
        return out
    if parsed.scheme != "s3":
        raise ConfigError(f"{uri}: use a path, file://, or s3:// (S3-compatible endpoints via endpoint_url)")
    if s3 is None:
        raise ConfigError(f"{uri}: no S3 client configured")
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    try:
        if key and not key.endswith("/"):
            keys = [key]
        else:
            keys = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
                keys.extend(o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/"))
            keys.sort()
            if not keys:
                raise SourceError(f"{uri}: no objects under this prefix")
        out = []
        total = 0
        for k in keys:
            obj = s3.get_object(Bucket=bucket, Key=k)
            total += int(obj.get("ContentLength") or 0)
            if total > max_bytes:
                raise SourceError(f"{uri}: larger than max_bytes={max_bytes}")
            out.append((f"s3://{bucket}/{k}", obj["Body"].read()))
        return out
    except ClientError as exc:
        raise SourceError(f"{uri}: {exc}") from exc
    except BotoCoreError as exc:
        raise SourceError(f"{uri}: {exc}") from exc


class NoArchive:
    """Dry runs: nothing is written; references say so."""

    def put(self, key: str, body: bytes, sha256_hex: str) -> str:
        return f"unarchived:{key}"
