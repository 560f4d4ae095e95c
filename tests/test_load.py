"""The load test's short form: 32 concurrent senders for 8 s against a real server process; every
answer the one expected, every acknowledged record stored at its newest sequence, memory bounded.

``make stress`` runs the same harness (``bench/load.py``) with more senders for longer and prints
the figures: requests and records a second, latencies by endpoint, the server's RSS over time.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from .helpers import bench_script

pytestmark = [pytest.mark.load, pytest.mark.serve]


def load_bench() -> ModuleType:
    return bench_script("load.py", "importapi_load")


async def test_concurrent_senders_get_expected_answers_and_newest_acked_versions_stored(
    tmp_path: Path,
) -> None:
    load = load_bench()
    # 500 keys a table rather than 2,000: a short run still updates most keys many times over.
    report = await load.run(senders=32, seconds=8, seed=6, keys=500, work_dir=tmp_path)
    summary = report.summary()
    assert not report.stats.unexpected, summary  # 2xx and the expected 4xx only: no 503, no 500
    assert set(report.stats.statuses) == set(load.ENDPOINTS), summary  # every endpoint was hit
    assert set(report.stats.statuses[load.INVALID]) <= {"400", "401", "403", "405", "415", "422"}
    assert report.stats.records_stored > 1000 and report.keys_checked > 500, summary
    # Every request was answered 2xx or its 4xx, so no key is open: each holds exactly the
    # version of its newest acknowledged sequence, and nothing validated or rejected is stored.
    assert report.keys_open == 0 and report.state_problems == [], summary
    assert report.integrity_failures == [], summary
    assert report.rss_bounded and report.peak_rss_kib > 0, summary
    assert report.server_tracebacks == 0 and report.exit_code_on_sigterm == 0, summary
    assert report.failures == [], summary
