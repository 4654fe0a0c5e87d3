"""AbuseIPDB ``/api/v2/check`` client (only used when an API key is configured)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests


class ApiError(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class AbuseIpDbConfig:
    api_key: str
    base_url: str = "https://api.abuseipdb.com"
    max_age_days: int = 90
    timeout_s: float = 10.0


class AbuseIpDb:
    def __init__(self, cfg: AbuseIpDbConfig, session: requests.Session | None = None) -> None:
        self.cfg = cfg
        self._http = session or requests.Session()

    def check(self, ip: str, timeout_s: float | None = None) -> dict[str, Any]:
        try:
            resp = self._http.get(
                f"{self.cfg.base_url.rstrip('/')}/api/v2/check",
                params={"ipAddress": ip, "maxAgeInDays": str(self.cfg.max_age_days)},
                headers={"Key": self.cfg.api_key, "Accept": "application/json"},
                timeout=timeout_s or self.cfg.timeout_s,
            )
        except requests.RequestException as exc:
            raise ApiError(f"AbuseIPDB unreachable: {type(exc).__name__}: {exc}"[:300]) from exc
        if resp.status_code == 429:
            retry = resp.headers.get("Retry-After") or resp.headers.get("X-RateLimit-Reset")
            raise ApiError("AbuseIPDB rate limit reached", float(retry) if retry and retry.isdigit() else 60.0)
        if resp.status_code in (401, 403):
            raise ApiError(f"AbuseIPDB rejected the API key (HTTP {resp.status_code})")
        if resp.status_code != 200:
            raise ApiError(f"AbuseIPDB answered HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            data = resp.json()["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiError(f"AbuseIPDB answer not understood: {resp.text[:200]}") from exc
        if not isinstance(data, dict):
            raise ApiError("AbuseIPDB answer has no data object")
        return data
