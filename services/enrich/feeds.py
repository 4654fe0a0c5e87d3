"""IP reputation feeds (Tor exit list, block lists), downloaded on a schedule, held in memory.

A feed that fails to download keeps its previous snapshot and records the error; a feed that
never loaded is reported as unavailable, never as "not listed".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import requests

from alertline.clock import Clock, utcnow
from services.enrich.iplists import IpSet, parse_list

log = logging.getLogger(__name__)
MAX_FEED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class FeedSpec:
    name: str
    url: str
    kind: str = "blocklist"  # tor | blocklist
    verdict: str = "malicious"  # what a hit means: suspicious | malicious


@dataclass(frozen=True)
class Snapshot:
    ips: IpSet
    fetched_at: datetime
    entries: int
    rejected: int
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FeedStatus:
    spec: FeedSpec
    snapshot: Snapshot | None
    error: str | None
    error_at: datetime | None


class Feeds:
    def __init__(
        self,
        specs: Mapping[str, FeedSpec],
        interval_s: float = 3600.0,
        timeout_s: float = 30.0,
        clock: Clock = utcnow,
        session: requests.Session | None = None,
    ) -> None:
        self.specs = dict(specs)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.clock = clock
        self._http = session or requests.Session()
        self._lock = threading.Lock()
        self._status: dict[str, FeedStatus] = {n: FeedStatus(s, None, None, None) for n, s in self.specs.items()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def status(self) -> dict[str, FeedStatus]:
        with self._lock:
            return dict(self._status)

    def refresh(self) -> dict[str, str | None]:
        """Download every feed once; returns name -> error (None when fresh)."""
        return {name: self.refresh_one(name) for name in self.specs}

    def refresh_one(self, name: str) -> str | None:
        spec = self.specs[name]
        old = self._status[name].snapshot
        headers = {"User-Agent": "alertline-enrich/0.1"}
        if old and old.etag:
            headers["If-None-Match"] = old.etag
        if old and old.last_modified:
            headers["If-Modified-Since"] = old.last_modified
        now = self.clock()
        try:
            with self._http.get(spec.url, headers=headers, timeout=self.timeout_s, stream=True) as resp:
                if resp.status_code == 304 and old is not None:
                    snap = Snapshot(old.ips, now, old.entries, old.rejected, old.etag, old.last_modified)
                    self._set(name, FeedStatus(spec, snap, None, None))
                    return None
                resp.raise_for_status()
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_content(65536):
                    size += len(chunk)
                    if size > MAX_FEED_BYTES:
                        raise ValueError(f"feed larger than {MAX_FEED_BYTES} bytes")
                    chunks.append(chunk)
                text = b"".join(chunks).decode("utf-8", "replace")
                etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
        except (requests.RequestException, ValueError) as exc:
            err = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("feed download failed; keeping the previous list", extra={"feed": name, "error": err})
            self._set(name, FeedStatus(spec, old, err, now))
            return err
        parsed = parse_list(text)
        if not parsed.networks and parsed.rejected:
            err = f"no address parsed, {len(parsed.rejected)} lines rejected (e.g. {parsed.rejected[0]!r})"
            self._set(name, FeedStatus(spec, old, err, now))
            return err
        snap = Snapshot(IpSet(parsed.networks), now, len(parsed.networks), len(parsed.rejected), etag, modified)
        self._set(name, FeedStatus(spec, snap, None, None))
        log.info("feed loaded", extra={"feed": name, "entries": snap.entries, "rejected": snap.rejected})
        return None

    def _set(self, name: str, st: FeedStatus) -> None:
        with self._lock:
            self._status[name] = st

    def start(self) -> None:
        """Refresh now and then every ``interval_s`` in a background thread."""
        if self._thread is not None or not self.specs:
            return

        def loop() -> None:
            while not self._stop.is_set():
                self.refresh()
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=loop, name="feeds", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
