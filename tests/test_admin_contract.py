"""The admin API's contract: its OpenAPI document against a running server, checked by
schemathesis.

The document (``admin/openapi.py``) must be exact, so that a client generated from it, or a tool
that tests an API from its document, works unchanged (issue 19). schemathesis reads it (the
document ``/_importapi/v1/openapi.json`` serves, as ``test_admin.py`` checks) and sends every
operation, reads and writes alike, to a server process of this module's own (its resets and
fault rules harm nothing there), with the admin token and all of its checks. A valid request
refused, an invalid one taken, a status, content type, header or body the document does not
declare, a 405 without ``Allow``, a 5xx: each fails the test, with schemathesis' report and a
``curl`` that repeats the request.

Bounded and repeatable: a fixed seed and a fixed number of examples per operation, then
sequences of operations along the document's links (a table listed, read, reset, read again; a
fault rule added, then removed). What no schema can say is kept out of the way, each with its
reason: ``servable`` and ``CONFIG``.
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings

from importapi_lite import Settings
from importapi_lite.admin.openapi import OPENAPI
from importapi_lite.admin.routes import ADMIN_PREFIX

from .helpers import JSON, make_token, record, serving

pytestmark = [pytest.mark.serve, pytest.mark.fuzz]

SEED = 19
EXAMPLES = 60  # per operation and generation phase: the module takes ~20 s on 2 cores
ADMIN_TOKEN = secrets.token_hex(16)
TABLE = "customers"  # the document's example table, so the examples read real rows
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a request's time depends on the machine, not on the input
    database=None,  # no .hypothesis/ in the working tree; failures print their reproducer
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
CONFIG = {
    "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    "operations": [
        {
            # Both answer 200 for any table's name, by design (the document says so): a wait
            # until the table exists, what was rejected under that name (nothing, after a
            # reset). A read after the table's DELETE is no resource outliving its deletion.
            "include-path-regex": "/tables/[^/]+/(wait|rejected)$",
            "checks": {"use_after_free": {"enabled": False}},
        }
    ],
}
# Read at collection, so each operation is a test of its own; the server starts only if one runs.
# (Not schemathesis.pytest.from_fixture, which would load it from the server: it reads a private
# attribute of pytest's nodes that pytest 9.2 no longer has.)
schema = schemathesis.openapi.from_dict(OPENAPI, config=schemathesis.Config.from_dict(CONFIG))

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")  # as the wait handler reads it
_FILTER = re.compile(r"[^:]+:")  # where's column:value, as the document's pattern says


def servable(case: Any) -> None:
    """The two changes made to a drawn case. Values the document calls invalid stay as drawn,
    so its bounds are tried all the same.

    - A wait's valid ``timeout`` (or none: 10 s) becomes 0: the wait answers at once, in the
      same shape, instead of holding the test for up to a minute.
    - A ``where`` filter names ``_sdc_sequence``, a column of every table: which columns a table
      has is its data's, which no schema can say (one it lacks is a 400, as the document says).
    """
    query = dict(case.query or {})
    if case.path.endswith("/wait"):
        given = query.get("timeout")
        if given is None or (_NUMBER.fullmatch(str(given)) and 0 <= float(given) <= 60):
            query["timeout"] = 0
    if case.path.endswith(("/rows", "/export")) and "where" in query:
        where = query["where"]
        query["where"] = [_known_column(f) for f in (where if isinstance(where, list) else [where])]
    if query:
        case.query = query


def _known_column(given: Any) -> Any:
    if isinstance(given, str) and _FILTER.match(given):
        return "_sdc_sequence:" + given.partition(":")[2]
    return given


class ContractServer:
    """The server under test and its data (a table with a subtable, a rejected record, a
    journal), put back when an operation may have reset it."""

    def __init__(self, url: str, push_token: str) -> None:
        self.url = url
        self.admin_url = url + ADMIN_PREFIX
        self.push_token = push_token
        self.changed = True

    def prepare(self, case: Any) -> None:
        """Before an example of one operation: the data back if it may be gone, the case
        servable."""
        if self.changed:
            self.seed()
        self.changed = case.method in ("DELETE", "POST")  # a reset; a rule that fails pushes
        servable(case)

    def seed(self) -> None:
        """No fault rules (one would fail the push), and the data as at the start."""
        self._send("DELETE", ADMIN_PREFIX + "/faults", None, ADMIN_TOKEN)
        rows = [
            record(TABLE, 1, {"id": 1, "name": "Finn", "tags": [{"tag": "new"}]}),
            record(TABLE, 1, {"id": 2, "name": "Jake", "age": 28}),
            record(TABLE, 2, {"id": 3, "_sdc_sequence": 2}),  # rejected: a system column
        ]
        self._send("POST", "/v2/import/push", rows, self.push_token)
        self.changed = False

    def _send(self, method: str, path: str, body: Any, token: str) -> None:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": JSON},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status < 300, (method, path, response.status)


@pytest.fixture(scope="module")
def contract_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContractServer]:
    data_dir: Path = tmp_path_factory.mktemp("contract") / "data"
    push_token = make_token(Settings(data_dir=data_dir))
    env = {"IMPORTAPI_LITE_ADMIN_TOKEN": ADMIN_TOKEN}
    with serving(data_dir, "--durability", "fast", env=env) as server:
        yield ContractServer(server.url, push_token)


@schema.parametrize()
@BOUNDED
@seed(SEED)
def test_every_admin_operation_answers_as_its_document_says(
    case: Any, contract_server: ContractServer
) -> None:
    contract_server.prepare(case)
    # The base URL with each call: the checks that send requests of their own use it too.
    case.call_and_validate(base_url=contract_server.admin_url)


def test_sequences_along_the_documents_links_answer_as_it_says(
    contract_server: ContractServer,
) -> None:
    class Contract(schema.as_state_machine()):
        def setup(self) -> None:
            # Each sequence from the same start, never within one: a table put back after its
            # reset would look like a resource that outlived its DELETE.
            contract_server.seed()

        def before_call(self, case: Any) -> None:
            servable(case)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": contract_server.admin_url}

    # derandomize: hypothesis' seed for a state machine, fixed by the test's name.
    Contract.run(settings=settings(BOUNDED, stateful_step_count=10, derandomize=True))
