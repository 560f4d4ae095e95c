"""The time now, as the loading model writes timestamps (``plan.shape.utc_text``'s form).

Every request takes one for ``_sdc_received_at``, every transaction one for
``_sdc_batched_at``: the text of the current second is made once, and each call only adds the
microseconds. Imports nothing of ours.
"""

from __future__ import annotations

import time


def now_text() -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ``, UTC."""
    global _second_text
    second, fraction = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _second_text  # read once: writer threads call this too
    if cached[0] != second:
        cached = _second_text = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{fraction:06d}Z"


_second_text: tuple[int, str] = (-1, "")  # (seconds since the epoch, its text)
