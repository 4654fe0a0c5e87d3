"""Where screenshots go: S3, content-addressed (a re-check of an unchanged page reuses the object)."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


class ArtifactError(Exception):
    """Storing an artifact failed."""


class ArtifactStore(Protocol):
    def put_png(self, data: bytes, identity: str) -> str: ...


class S3Artifacts:
    def __init__(
        self,
        bucket: str,
        prefix: str = "screenshots/",
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._s3 = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 3}),
        )

    def put_png(self, data: bytes, identity: str) -> str:
        key = f"{self.prefix}{hashlib.sha256(data).hexdigest()}.png"
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType="image/png",
                Metadata={"alertline-identity": identity[:512]},
            )
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactError(f"put s3://{self.bucket}/{key}: {exc}") from exc
        return f"s3://{self.bucket}/{key}"


class DirectoryArtifacts:
    """For the CLI: ``--screenshot DIR``."""

    def __init__(self, directory: str) -> None:
        from pathlib import Path

        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def put_png(self, data: bytes, identity: str) -> str:
        safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in identity)[:120]
        path = self.dir / f"{safe}.png"
        path.write_bytes(data)
        return str(path)
