"""Hot reload of the rule and lookup files, with last-good fallback.

A background thread reads the files every few seconds (a Kubernetes ConfigMap update
arrives as an atomic symlink swap, so a read sees the old or the new set, never half). When
their content changed, the new set is compiled; if it is valid it replaces the running one
between two records, if not the running set stays and the problems are logged, counted
(``alertline_evaluate_rules_reload_failing`` = 1) and shown on ``GET /rules``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from alertline.clock import Clock, iso, utcnow
from alertline.http import Request, Response
from services.evaluate.diagnostics import Problem, RulesError
from services.evaluate.rules import Loaded, compile_sources, read_sources

log = logging.getLogger("alertline.evaluate.reload")


@dataclass
class ReloadStatus:
    fingerprint: str
    rules: int
    loaded_at: datetime
    failing_fingerprint: str | None = None
    problems: list[Problem] = field(default_factory=list)
    failed_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "rules": self.rules,
            "loaded_at": iso(self.loaded_at),
            "reload_failing": self.failing_fingerprint is not None,
            "failed_at": iso(self.failed_at) if self.failed_at else None,
            "problems": [str(p) for p in self.problems],
        }


class RuleReloader:
    def __init__(
        self,
        rules_dir: Path,
        lookups_dir: Path | None,
        install: Callable[[Loaded], None],
        current: Loaded,
        interval_s: float = 5.0,
        clock: Clock = utcnow,
        on_status: Callable[[ReloadStatus, bool | None], None] | None = None,
    ) -> None:
        self.rules_dir = rules_dir
        self.lookups_dir = lookups_dir
        self.install = install
        self.interval_s = interval_s
        self.clock = clock
        self.on_status = on_status
        self.status = ReloadStatus(current.fingerprint, len(current.rules), clock())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool | None:
        """Look once. True: a new set was installed; False: a change was rejected; None: no change."""
        try:
            sources = read_sources(self.rules_dir, self.lookups_dir)
        except RulesError as exc:
            return self._failed(f"unreadable:{exc.problems}", exc.problems)
        fp = sources.fingerprint
        if fp == self.status.fingerprint:
            if self.status.failing_fingerprint is not None:
                log.info("rule files are back to the running set", extra={"ruleset": fp})
                self._clear()
            return None
        if fp == self.status.failing_fingerprint:
            return False  # already reported
        try:
            loaded = compile_sources(sources)
        except RulesError as exc:
            return self._failed(fp, exc.problems)
        self.install(loaded)
        old = self.status.fingerprint
        self.status = ReloadStatus(fp, len(loaded.rules), self.clock())
        log.info("rules reloaded", extra={"ruleset": fp, "previous": old, "rules": len(loaded.rules)})
        for w in loaded.warnings:
            log.warning("rule warning", extra={"problem": str(w)})
        self._notify(True)
        return True

    def _failed(self, fp: str, problems: list[Problem]) -> bool:
        if fp == self.status.failing_fingerprint:
            return False
        self.status.failing_fingerprint = fp
        self.status.problems = list(problems)
        self.status.failed_at = self.clock()
        log.error(
            "rule reload rejected; keeping the running rules",
            extra={
                "running": self.status.fingerprint,
                "problems": "\n".join(str(p) for p in problems),
            },
        )
        self._notify(False)
        return False

    def _clear(self) -> None:
        self.status.failing_fingerprint = None
        self.status.problems = []
        self.status.failed_at = None
        self._notify(None)

    def _notify(self, result: bool | None) -> None:
        if self.on_status is not None:
            self.on_status(self.status, result)

    # ------------------------------------------------------------------ thread
    def start(self) -> RuleReloader:
        self._thread = threading.Thread(target=self._run, name="rules-reload", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # a reload bug must not take the running rules down with it
                log.exception("rule reload check failed")

    # ------------------------------------------------------------------ http
    def route(self, req: Request) -> Response:
        body = json.dumps(self.status.as_json(), indent=1).encode() + b"\n"
        return Response(200, body, "application/json")
