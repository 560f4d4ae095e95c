"""Recent activity (``observe/activity.py``, read at ``GET /_importapi/v1/activity``): data points
per table in buckets of a few seconds, bounded in time and in tables, for the dashboard's chart."""

from __future__ import annotations

from typing import Any

import pytest

from importapi_lite.models import LoadResult
from importapi_lite.observe.activity import OTHER, Activity

from .helpers import CLIENT_ID, Admin, Api, record


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def loads(table: str, accepted: int = 0, stale: int = 0, rejected: int = 0) -> list[LoadResult]:
    return [LoadResult(table, accepted, stale, rejected)]


def by_table(activity: Activity) -> dict[str | None, dict[str, list[int]]]:
    return {
        None if s.key is None else s.key[2]: {
            "accepted": s.accepted,
            "stale": s.stale,
            "rejected": s.rejected,
        }
        for s in activity.snapshot().series
    }


# --- the module ---------------------------------------------------------------------------------


def test_counts_add_up_per_table_in_buckets_aligned_to_the_bucket_size() -> None:
    clock = Clock(1_000_003.0)
    activity = Activity(bucket_seconds=5, window_seconds=20, clock=clock)

    activity.record(CLIENT_ID, "import_api", loads("users", accepted=2, stale=1))
    activity.record(CLIENT_ID, "import_api", loads("users", accepted=1, rejected=4))
    clock.now = 1_000_006.0  # the next bucket
    activity.record(
        CLIENT_ID, "import_api", [LoadResult("users", 7), LoadResult("orders", 1, 0, 1)]
    )

    snapshot = activity.snapshot()
    assert snapshot.buckets == [999_990, 999_995, 1_000_000, 1_000_005]
    assert [s.key for s in snapshot.series] == [
        (CLIENT_ID, "import_api", "orders"),
        (CLIENT_ID, "import_api", "users"),
    ]
    assert by_table(activity)["users"] == {
        "accepted": [0, 0, 3, 7],
        "stale": [0, 0, 1, 0],
        "rejected": [0, 0, 4, 0],
    }
    assert by_table(activity)["orders"] == {
        "accepted": [0, 0, 0, 1],
        "stale": [0, 0, 0, 0],
        "rejected": [0, 0, 0, 1],
    }


def test_the_same_table_of_two_clients_or_integrations_is_two_series() -> None:
    activity = Activity(clock=Clock(100.0))

    activity.record(1, "import_api", loads("users", accepted=1))
    activity.record(2, "import_api", loads("users", accepted=1))
    activity.record(2, "other", loads("users", accepted=1))

    assert [s.key for s in activity.snapshot().series] == [
        (1, "import_api", "users"),
        (2, "import_api", "users"),
        (2, "other", "users"),
    ]


def test_counts_fall_out_of_the_window_and_an_empty_series_is_forgotten() -> None:
    clock = Clock(1000.0)
    activity = Activity(bucket_seconds=5, window_seconds=20, clock=clock)
    activity.record(CLIENT_ID, "import_api", loads("old", accepted=1))
    clock.now = 1010.0
    activity.record(CLIENT_ID, "import_api", loads("new", accepted=1))

    clock.now = 1019.9  # the bucket of 1000 is still the window's first
    assert set(by_table(activity)) == {"old", "new"}
    assert by_table(activity)["old"]["accepted"] == [1, 0, 0, 0]

    clock.now = 1020.0
    assert set(by_table(activity)) == {"new"}
    assert by_table(activity)["new"]["accepted"] == [0, 1, 0, 0]

    clock.now = 5000.0
    assert activity.snapshot().series == []
    assert activity.snapshot().buckets == [4985, 4990, 4995, 5000]


def test_tables_beyond_max_tables_share_one_series_until_a_place_frees() -> None:
    clock = Clock(1000.0)
    activity = Activity(bucket_seconds=5, window_seconds=10, max_tables=2, clock=clock)
    for table in ("a", "b", "c", "d"):
        activity.record(CLIENT_ID, "import_api", loads(table, accepted=1))
    activity.record(CLIENT_ID, "import_api", loads("a", accepted=5))

    series = activity.snapshot().series
    assert [s.key for s in series] == [
        (CLIENT_ID, "import_api", "a"),
        (CLIENT_ID, "import_api", "b"),
        OTHER,
    ]
    assert [sum(s.accepted) for s in series] == [6, 1, 2]
    assert series[-1].as_json()["table"] is None

    clock.now = 1005.0
    activity.record(CLIENT_ID, "import_api", loads("a", accepted=1))
    clock.now = 1010.0  # b's only bucket and the others' are gone: b's place is free
    activity.record(CLIENT_ID, "import_api", loads("c", accepted=1))
    assert set(by_table(activity)) == {"a", "c"}


@pytest.mark.parametrize(
    "bucket_seconds, window_seconds, max_tables",
    [(0, 10, 1), (10, 5, 1), (5, 12, 1), (5, 10, -1)],
)
def test_an_activity_without_a_sensible_shape_is_refused(
    bucket_seconds: int, window_seconds: int, max_tables: int
) -> None:
    with pytest.raises(ValueError):
        Activity(
            bucket_seconds=bucket_seconds, window_seconds=window_seconds, max_tables=max_tables
        )


# --- the route ----------------------------------------------------------------------------------


def totals(body: dict[str, Any], table: str) -> tuple[int, int, int]:
    (series,) = [s for s in body["series"] if s["table"] == table]
    assert (series["client_id"], series["integration"]) == (CLIENT_ID, "import_api")
    assert len(series["accepted"]) == len(body["buckets"])
    return sum(series["accepted"]), sum(series["stale"]), sum(series["rejected"])


async def test_the_route_counts_what_each_table_loaded(admin: Admin, api: Api) -> None:
    await api.push([record("users", 5, {"id": 1}), record("users", 5, {"id": 2})])
    await api.push(
        [
            record("users", 1, {"id": 1}),  # stale
            record("users", 6, {"id": 3, "_sdc_sequence": 1}),  # rejected
            record("orders", 1, {"id": 1}),
        ]
    )

    reply = await admin.get("/activity")

    assert reply.status == 200
    body = reply.body
    assert (body["bucket_seconds"], body["window_seconds"], body["max_tables"]) == (5, 600, 20)
    assert len(body["buckets"]) == 120 and body["buckets"] == sorted(body["buckets"])
    assert all(b % 5 == 0 for b in body["buckets"])
    assert [s["table"] for s in body["series"]] == ["orders", "users"]
    assert totals(body, "users") == (2, 1, 1)
    assert totals(body, "orders") == (1, 0, 0)


async def test_refused_and_validated_requests_count_nothing(admin: Admin, api: Api) -> None:
    await api.validate([record("users", 1, {"id": 1})])
    await api.push([record("users", 1, {"name": "no id"})])  # 422
    await api.push([record("users", 1, {"id": 1})], token="wrong")

    reply = await admin.get("/activity")

    assert reply.body["series"] == []
