"""Recent activity: data points accepted, stale and rejected per table per few seconds, for the
dashboard's chart of records per second.

Pure data, no aiohttp: ``middleware.journal_middleware`` feeds it each request's load results.
Per process, like the journal, and bounded both ways: only the last ``window_seconds`` are kept,
and at most ``max_tables`` tables have a series of their own (the others share one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..models import LoadResult

BUCKET_SECONDS = 5
WINDOW_SECONDS = 600  # ten minutes: 120 points a series
MAX_TABLES = 20  # more series would be unreadable as lines, and each costs memory

# (client_id, integration, table_name); OTHER: the tables beyond MAX_TABLES, together.
SeriesKey = tuple[int, str, str] | None
OTHER: SeriesKey = None


@dataclass(frozen=True)
class Series:
    """One table's counts, a value per bucket of ``Activity.buckets``, oldest first."""

    key: SeriesKey
    accepted: list[int]
    stale: list[int]
    rejected: list[int]

    def as_json(self) -> dict[str, Any]:
        client_id, integration, table = (None, None, None) if self.key is None else self.key
        return {
            "client_id": client_id,
            "integration": integration,
            "table": table,  # None: the other tables, beyond the first MAX_TABLES
            "accepted": self.accepted,
            "stale": self.stale,
            "rejected": self.rejected,
        }


@dataclass(frozen=True)
class Snapshot:
    """The window: when each bucket starts (seconds since the epoch, oldest first; the last is
    the bucket under way), and the series with a count in it."""

    buckets: list[int]
    series: list[Series]


class Activity:
    """Counts per table in buckets of ``bucket_seconds``; the oldest fall out of the window.

    A table gets a series when it first loads and there are fewer than ``max_tables``; after
    that, new tables count in the ``OTHER`` series. A series with no count left in the window
    is forgotten, which frees its place.
    """

    def __init__(
        self,
        *,
        bucket_seconds: int = BUCKET_SECONDS,
        window_seconds: int = WINDOW_SECONDS,
        max_tables: int = MAX_TABLES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if bucket_seconds < 1 or window_seconds < bucket_seconds or max_tables < 0:
            raise ValueError("need 1 <= bucket_seconds <= window_seconds and max_tables >= 0")
        if window_seconds % bucket_seconds:
            raise ValueError("window_seconds must be a multiple of bucket_seconds")
        self.bucket_seconds = bucket_seconds
        self.window_seconds = window_seconds
        self.max_tables = max_tables
        self._clock = clock
        self._size = window_seconds // bucket_seconds  # buckets in the window
        # series -> bucket number (seconds since the epoch // bucket_seconds) -> its counts
        self._series: dict[SeriesKey, dict[int, list[int]]] = {}
        self._pruned_at = 0  # the bucket number when old buckets were last dropped

    def record(self, client_id: int, integration: str, results: Iterable[LoadResult]) -> None:
        """Count one request's loads. Cheap: a one-record push pays it."""
        bucket = int(self._clock() // self.bucket_seconds)
        if bucket != self._pruned_at:
            self._prune(bucket)
        all_series = self._series
        for result in results:
            key: SeriesKey = (client_id, integration, result.table_name)
            series = all_series.get(key)
            if series is None:
                named = len(all_series) - (OTHER in all_series)
                if named >= self.max_tables:
                    key = OTHER
                series = all_series.setdefault(key, {})
            counts = series.get(bucket)
            if counts is None:
                counts = series[bucket] = [0, 0, 0]
            counts[0] += result.accepted
            counts[1] += result.stale
            counts[2] += result.rejected

    def snapshot(self) -> Snapshot:
        """The window as it is now: every series with a count in it, named tables sorted by
        client, integration and name, then ``OTHER``."""
        now = int(self._clock() // self.bucket_seconds)
        self._prune(now)
        first = now - self._size + 1
        found = []
        for key, by_bucket in self._series.items():
            columns: list[list[int]] = [[0] * self._size for _ in range(3)]
            for bucket, counts in by_bucket.items():
                if bucket <= now:  # a bucket ahead of now: the clock was set back since
                    for column, count in zip(columns, counts, strict=True):
                        column[bucket - first] = count
            found.append(Series(key, *columns))
        found.sort(key=lambda s: (s.key is None, s.key or (0, "", "")))
        buckets = [b * self.bucket_seconds for b in range(first, now + 1)]
        return Snapshot(buckets, found)

    def _prune(self, now: int) -> None:
        first = now - self._size + 1
        for key in list(self._series):
            by_bucket = self._series[key]
            for bucket in [b for b in by_bucket if b < first]:
                del by_bucket[bucket]
            if not by_bucket:
                del self._series[key]
        self._pruned_at = now
