"""Helpers for tests and the demo that talk to a real broker (no fakes here)."""
