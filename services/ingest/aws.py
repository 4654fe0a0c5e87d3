"""boto3 clients for ingest (S3 archive, S3 objects named by notifications, SQS)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from services.ingest.settings import AwsSettings


def client(service: str, aws: AwsSettings, region: str | None = None) -> Any:
    # Standard retries with few attempts: a dependency that stays down surfaces as Transient
    # quickly, and the source redelivers, instead of one call hanging on retries.
    config = Config(
        connect_timeout=aws.connect_timeout_s,
        read_timeout=aws.read_timeout_s,
        retries={"mode": "standard", "max_attempts": 3},
    )
    return boto3.session.Session().client(
        service, region_name=region or aws.region, endpoint_url=aws.endpoint_url, config=config
    )
