"""Fixtures for the scan integration tests (defined in support.py with their helpers)."""

from tests.integration.scan.support import archive_moto, cloud

__all__ = ["archive_moto", "cloud"]
