"""Rejections in the server's log: a record answered with 201 but not loaded must not go unseen.

Stitch logs such records in ``_sdc_rejected`` and says nothing else; the mock also says so in its
log. The first rejection of each (client, integration, table, reason) is a WARNING of its own,
with the reason, the count and where to look; later ones are added up into one summary WARNING
at most every ``interval`` seconds. Never a record's data: only names and reasons.

Runs on the event loop; imports nothing of ours.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from collections import Counter
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

MAX_KNOWN = 10_000  # (table, reason) pairs remembered; reasons name fields, which clients choose
SUMMARY_PAIRS = 5  # pairs named in a summary line, the most frequent; the rest are counted

Pair = tuple[int, str, str, str]  # client_id, integration, table, reason


class RejectionLog:
    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._known: set[Pair] = set()
        self._pending: Counter[Pair] = Counter()  # rejected since the last summary, by pair
        self._pending_since = 0.0  # when the first of them was
        self._last_line = clock()  # a summary comes at least ``interval`` after the last line
        self._timer: asyncio.TimerHandle | None = None

    def rejected(
        self, client_id: int, integration: str, table: str, reasons: Mapping[str, int]
    ) -> None:
        """Records of ``table`` rejected just now, counted by reason."""
        for reason, count in reasons.items():
            pair = (client_id, integration, table, reason)
            if pair in self._known or len(self._known) >= MAX_KNOWN:
                if not self._pending:
                    self._pending_since = self._clock()
                self._pending[pair] += count
                continue
            self._known.add(pair)
            self._last_line = self._clock()
            logger.warning(
                "rejected %d record(s) of table %r (client %d, integration %r): %r. "
                "They are in _sdc_rejected: `importapi-lite rejected %s` lists them",
                count,
                table,
                client_id,
                integration,
                reason,
                shlex.quote(table),
            )
        if self._pending:
            self._schedule()

    def flush(self) -> None:
        """One summary line of what was rejected since the last line, if anything was."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        now = self._clock()
        top = self._pending.most_common(SUMMARY_PAIRS)
        named = "; ".join(f"{n} of {table!r}: {reason!r}" for (_, _, table, reason), n in top)
        total = sum(self._pending.values())
        rest = total - sum(n for _, n in top)
        logger.warning(
            "rejected %d more record(s) in the last %d s: %s%s",
            total,
            max(1, round(now - self._pending_since)),
            named,
            f"; {rest} more for other reasons" if rest else "",
        )
        self._pending.clear()
        self._last_line = now

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a CLI command): the caller flushes when it is done
            return
        delay = max(0.0, self.interval - (self._clock() - self._last_line))
        self._timer = loop.call_later(delay, self.flush)
