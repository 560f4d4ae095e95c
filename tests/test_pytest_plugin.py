"""The pytest plugin (``pytest_plugin.py``), run as a downstream project would: ``pytester`` in a
subprocess."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from importapi_lite.settings import Settings

from .helpers import pg_query

PAGE = (Path(__file__).resolve().parents[1] / "docs" / "pytest-plugin.md").read_text()


def readme_example() -> str:
    section = PAGE.split("# Testing with it: the pytest plugin", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_the_readme_example_passes_as_a_downstream_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_downstream=readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_the_fixture_works_in_async_tests_and_never_shows_its_tokens(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    pytester.makepyfile(
        test_async="""
import aiohttp


async def test_push_from_an_async_client(importapi_server):
    record = {"client_id": importapi_server.client_id, "table_name": "t", "sequence": 1,
              "action": "upsert", "key_names": ["id"], "data": {"id": 1, "tags": ["a"]}}
    headers = {"Authorization": f"Bearer {importapi_server.token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(importapi_server.push_url, json=[record], headers=headers) as r:
            assert r.status == 201
    assert importapi_server.rows("t")[0]["id"] == 1
    assert [r["value"] for r in importapi_server.rows("t__tags")] == ["a"]
    assert importapi_server.token not in repr(importapi_server)


def test_wait_for_rows_fails_the_test_with_what_was_there(importapi_server):
    try:
        importapi_server.wait_for_rows("nothing", 2, timeout=0.2)
    except AssertionError as error:
        assert "held 0 rows" in str(error)
    else:
        raise AssertionError("wait_for_rows should have failed")


def test_faults_for_one_table_and_a_batch(importapi_server):
    import json, urllib.request, urllib.error
    importapi_server.fail_next(2, status=429, endpoint="batch")
    message = {"action": "upsert", "sequence": 1, "data": {"x": 1}}
    batch = {"table_name": "b", "schema": {}, "key_names": [], "messages": [message]}
    body = json.dumps(batch).encode()
    headers = {"Authorization": f"Bearer {importapi_server.token}",
               "Content-Type": "application/json"}
    codes = []
    for _ in range(3):
        request = urllib.request.Request(importapi_server.batch_url, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request) as response:
                codes.append(response.status)
        except urllib.error.HTTPError as error:
            codes.append(error.code)
    assert codes == [429, 429, 201]
    assert len(importapi_server.rows("b")) == 1
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_the_plugin_can_be_switched_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_needs_it(importapi_server):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:importapi_lite", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'importapi_server' not found*"])


REJECTING_SUITE = """
import json, urllib.request

import pytest


def push(server, *records):
    body = json.dumps([
        {"client_id": server.client_id, "table_name": table, "sequence": 1, "action": "upsert",
         "key_names": ["id"], "data": data}
        for table, data in records
    ]).encode()
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    request = urllib.request.Request(server.push_url, data=body, headers=headers)
    with urllib.request.urlopen(request) as response:
        assert response.status == 201


def test_rejected_lists_records_with_their_reasons(importapi_server):
    push(importapi_server, ("t", {"id": 1}), ("t", {"id": 2, "_sdc_batched_at": 0}))
    (rejected,) = importapi_server.rejected("t")
    assert rejected["reason"] == "Field _sdc_batched_at collides with a system column"
    assert rejected["record"]["data"] == {"id": 2, "_sdc_batched_at": 0}
    assert importapi_server.rejected("other") == []
    assert len(importapi_server.rejected()) == 1


def test_a_clean_load(importapi_server):
    push(importapi_server, ("t", {"id": 1}))
    assert importapi_server.rejected() == []


def test_loses_data_quietly(importapi_server):
    push(importapi_server, ("t", {"id": 1, "_sdc_sequence": 5}))
    assert importapi_server.rows("t") == []  # a test that only counts rows


@pytest.mark.importapi_allow_rejections
def test_expects_a_rejection(importapi_server):
    push(importapi_server, ("y" * 64, {"id": 1}))
    assert len(importapi_server.rejected()) == 1
"""


def test_rejected_records_are_listed_and_pass_without_the_option(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_rejecting=REJECTING_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


@pytest.mark.parametrize(
    "how", ["--importapi-fail-on-rejection", "ini"], ids=["option", "ini option"]
)
def test_fail_on_rejection_fails_the_tests_that_left_rejections(
    pytester: pytest.Pytester, how: str
) -> None:
    pytester.makepyfile(test_rejecting=REJECTING_SUITE)
    args = ["-p", "no:cacheprovider"]
    if how == "ini":
        pytester.makeini("[pytest]\nimportapi_fail_on_rejection = true\n")
    else:
        args.append(how)
    result = pytester.runpytest_subprocess(*args)
    # The two tests that leave a rejection behind and are not marked: an error at teardown.
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*importapi-lite accepted but rejected 1 record(s): 1 of 't': Field _sdc_sequence "
            "collides with a system column*",
        ]
    )


@pytest.mark.parametrize("destination", ["postgresql"], indirect=True)
@pytest.mark.parametrize("how", ["environment", "option"])
def test_the_fixture_loads_into_postgresql_when_told_session_after_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, settings: Settings, how: str
) -> None:
    pytester.makepyfile(test_downstream=readme_example(), test_rejecting=REJECTING_SUITE)
    args = ["-p", "no:cacheprovider", "--importapi-fail-on-rejection"]
    if how == "environment":
        monkeypatch.setenv("IMPORTAPI_LITE_DESTINATION", str(settings.destination))
    else:
        args.append(f"--importapi-destination={settings.destination}")

    for _ in range(3):  # more sessions than an integration's active tokens
        result = pytester.runpytest_subprocess(*args)
        result.assert_outcomes(passed=7, errors=2)

    # The last test's rejection is in PostgreSQL, in the integration's schema.
    rejected = pg_query(settings, "SELECT table_name FROM import_api._sdc_rejected")
    assert rejected == [{"table_name": "y" * 64}]
    tokens = pg_query(settings, "SELECT revoked_at FROM _importapi.tokens")
    assert len(tokens) == 3 and all(t["revoked_at"] is not None for t in tokens)
