"""Records answered with 201 but not loaded are easy to see: in the admin API, and in the log
(``observe/rejection_log.py``).

Stitch answers 201 and logs such records in ``_sdc_rejected``; the mock shows them where people
look (the CLI's ``tables`` and ``rejected`` are in test_store_commands.py, the dashboard in
test_dashboard.py, the pytest plugin in test_pytest_plugin.py).
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from importapi_lite.observe.rejection_log import MAX_KNOWN, RejectionLog

from .helpers import CLIENT_ID, Admin, Api, record

INTEGRATION = f"/clients/{CLIENT_ID}/integrations/import_api"
COLLISION = "Field _sdc_sequence collides with a system column"
KEY_TYPE = "Key column id changed type from integer to string"


async def reject_some(api: Api) -> None:
    await api.push([record("users", 1, {"id": 1, "name": "kept"})])
    await api.push(
        [
            record("users", 2, {"id": 2, "_sdc_sequence": 2}),
            record("users", 3, {"id": 3, "_sdc_sequence": 3}),
            record("users", 4, {"id": "four"}),
            record("x" * 64, 1, {"id": 1}),
        ]
    )


# --- the admin API -----------------------------------------------------------------------------


async def test_a_tables_rejected_records_come_with_their_reasons(admin: Admin, api: Api) -> None:
    await reject_some(api)

    reply = await admin.get(INTEGRATION + "/tables/users/rejected")

    assert reply.status == 200
    body = reply.body
    assert (body["table"], body["total"], body["limit"], body["offset"]) == ("users", 3, 100, 0)
    assert [(r["reason"], r["count"]) for r in body["reasons"]] == [(COLLISION, 2), (KEY_TYPE, 1)]
    assert [r["record"]["data"]["id"] for r in body["records"]] == ["four", 3, 2]  # newest first
    assert body["records"][0]["reason"] == KEY_TYPE
    assert body["records"][0]["record"] == {
        "action": "upsert",
        "sequence": 4,
        "key_names": ["id"],
        "data": {"id": "four"},
    }


async def test_a_table_with_only_rejections_is_listed_and_its_records_shown(
    admin: Admin, api: Api
) -> None:
    await reject_some(api)
    name = "x" * 64

    tables = (await admin.get(INTEGRATION + "/tables")).body["tables"]
    rejected = (await admin.get(f"{INTEGRATION}/tables/{name}/rejected")).body

    assert {t["name"]: (t["rows"], t["rejected"]) for t in tables} == {
        "users": (1, 3),
        name: (0, 1),
    }
    assert rejected["total"] == 1
    assert rejected["records"][0]["reason"] == f"Table name {name} is longer than 63 characters"


async def test_every_tables_rejections_page_by_page(admin: Admin, api: Api) -> None:
    await reject_some(api)

    first = (await admin.get(INTEGRATION + "/rejected?limit=2")).body
    second = (await admin.get(INTEGRATION + "/rejected?limit=2&offset=2")).body
    one = (await admin.get(INTEGRATION + "/rejected?table=users&limit=1")).body

    assert first["table"] is None and first["total"] == second["total"] == 4
    assert len(first["records"]) == 2 and len(second["records"]) == 2
    assert {r["table_name"] for r in first["reasons"]} == {"users", "x" * 64}
    assert (one["table"], one["total"], len(one["records"])) == ("users", 3, 1)


async def test_rejected_of_a_table_without_any_is_empty(admin: Admin, api: Api) -> None:
    await api.push([record("users", 1, {"id": 1})])

    body = (await admin.get(INTEGRATION + "/tables/users/rejected")).body

    assert (body["total"], body["reasons"], body["records"]) == (0, [], [])


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "offset=-1"])
async def test_rejected_refuses_a_bad_page(admin: Admin, query: str) -> None:
    reply = await admin.get(f"{INTEGRATION}/rejected?{query}")

    assert (reply.status, reply.body["error"]) == (400, "bad_request")


async def test_resetting_a_table_with_only_rejections_forgets_them(admin: Admin, api: Api) -> None:
    await reject_some(api)
    name = "x" * 64

    reply = await admin.delete(f"{INTEGRATION}/tables/{name}")

    assert reply.body["removed"] is True
    assert (await admin.get(f"{INTEGRATION}/tables/{name}/rejected")).body["total"] == 0
    assert (await admin.get(INTEGRATION + "/tables/users/rejected")).body["total"] == 3


# --- the log -----------------------------------------------------------------------------------


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "importapi_lite.observe.rejection_log" and r.levelno == logging.WARNING
    ]


async def test_the_first_rejection_of_a_table_and_reason_is_a_warning_with_its_count(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    await reject_some(api)

    lines = warnings_of(caplog)
    assert len(lines) == 3
    assert (
        f"rejected 2 record(s) of table 'users' (client {CLIENT_ID}, integration 'import_api'): "
        f"'{COLLISION}'. They are in _sdc_rejected: `importapi-lite rejected users` lists them"
    ) in lines
    assert sum(line.startswith("rejected 1 record(s) of table 'users'") for line in lines) == 1
    assert (
        sum(line.startswith(f"rejected 1 record(s) of table '{'x' * 64}'") for line in lines) == 1
    )


async def test_repeated_rejections_are_summed_up_not_repeated(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await reject_some(api)
    for sequence in range(5, 8):
        await api.push([record("users", sequence, {"id": sequence, "_sdc_sequence": 1})])

    assert len(warnings_of(caplog)) == 3  # the three first ones: the repeats wait for a summary


def test_the_summary_adds_up_the_repeats_by_table_and_reason() -> None:
    now = [0.0]
    log = RejectionLog(interval=60, clock=lambda: now[0])
    log.rejected(1, "i", "t", {"a": 1})
    log.rejected(1, "i", "t", {"a": 2, "b": 1})  # a: a repeat; b: a first
    log.rejected(1, "i", "u", {"a": 4})

    now[0] = 61.0
    with CaptureWarnings() as lines:
        log.flush()
        log.flush()  # nothing new: no line

    assert lines == ["rejected 2 more record(s) in the last 61 s: 2 of 't': 'a'"]


def test_the_summary_names_the_most_frequent_and_counts_the_rest() -> None:
    log = RejectionLog()
    for n in range(8):
        log.rejected(1, "i", "t", {f"reason {n}": 1})
        log.rejected(1, "i", "t", {f"reason {n}": n + 1})

    with CaptureWarnings() as lines:
        log.flush()

    (line,) = lines
    assert "8 of 't': 'reason 7'" in line and "4 of 't': 'reason 3'" in line
    assert "reason 2" not in line
    assert line.endswith("; 6 more for other reasons")  # reasons 0, 1 and 2: 1 + 2 + 3


def test_past_its_memory_new_pairs_go_to_the_summary() -> None:
    log = RejectionLog()
    with CaptureWarnings() as lines:
        for n in range(MAX_KNOWN + 3):
            log.rejected(1, "i", "t", {f"field {n}": 1})

        log.flush()

    assert len(lines) == MAX_KNOWN + 1
    assert lines[-1].startswith("rejected 3 more record(s)")


async def test_a_summary_comes_by_itself_after_the_interval() -> None:
    log = RejectionLog(interval=0.05)
    with CaptureWarnings() as lines:
        log.rejected(1, "i", "t", {"a": 1})
        log.rejected(1, "i", "t", {"a": 1})
        assert len(lines) == 1
        await asyncio.sleep(0.2)

    assert len(lines) == 2 and lines[1].startswith("rejected 1 more record(s)")


class CaptureWarnings(logging.Handler):
    """The rejection log's WARNING lines, as text."""

    def __enter__(self) -> list[str]:
        self.lines: list[str] = []
        self.logger = logging.getLogger("importapi_lite.observe.rejection_log")
        self.logger.addHandler(self)
        self.level_before = self.logger.level
        self.logger.setLevel(logging.WARNING)
        return self.lines

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
