"""The one exception hierarchy.

Two families matter to the runtime:
- ``BadInput``: the record itself is wrong. It goes to the dead-letter topic with its cause,
  and processing continues.
- ``Transient``: the world is wrong for now (broker, GitHub, S3 down; rate limited). The runtime
  backs off and retries; nothing is committed past the record.
"""

from __future__ import annotations


class AlertlineError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(AlertlineError):
    """Settings, rules or other configuration are invalid."""


class BadInput(AlertlineError):
    """A record cannot be processed; it belongs in the dead-letter topic."""


class DecodeError(BadInput):
    """Bytes could not be decoded into a known schema."""


class NormalizeError(BadInput):
    """A source delivery could not be normalized into alerts."""


class Transient(AlertlineError):
    """A dependency failed in a way that may succeed later; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
