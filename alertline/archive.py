"""The raw archive on S3: every delivery (and every scan result) written as-is before anything
is published. Shared by ingest and the scanner."""

from __future__ import annotations

import base64
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from alertline.errors import Transient


class S3Archive:
    """``put_object`` with ``ChecksumSHA256``: S3 verifies the bytes it stored are the bytes we
    hashed (the key is that hash), and rejects the write otherwise."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, body: bytes, sha256_hex: str) -> str:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256_hex)).decode(),
                ContentType="application/json",
                Metadata={"sha256": sha256_hex},
            )
        except (ClientError, BotoCoreError) as exc:
            raise Transient(f"s3://{self.bucket}/{key}: {exc}", retry_after=5.0) from exc
        return self.uri(key)
