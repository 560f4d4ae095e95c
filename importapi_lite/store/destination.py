"""The destination interface: what a kind of warehouse must do to hold the loaded data.

``store.sqlite`` (one SQLite file per table) is the one implementation today. ``web``, ``ingest``
and ``admin`` speak only to this protocol, so another destination plugs in without them:

- **load** a table batch (or one a worker prepared, ``Staged``) in one transaction: plan it with
  ``plan.plans.plan_load`` against the table's layout as committed, create what is new, and
  apply the steps, the sequence rule and ``activate_version`` deciding in SQL; records it cannot
  load go to its ``_sdc_rejected``;
- give the committed **layouts** a worker plans against, and the **stager** it plans with;
- **read** integrations, tables, rows and rejected records; **reset** them; say its **health**.

The data types below are what those calls return, the same for every destination.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..models import LoadResult, TableBatch
from ..plan.model import Layout

Where = Sequence[tuple[str, str]]  # (column, value) pairs, all must hold; compared as text


class Staged(Protocol):
    """A table batch a worker process planned, its rows set aside for the load to take in."""

    @property
    def table_name(self) -> str: ...

    def discard(self) -> None:
        """Free what holds its rows (after its load, or if it is never loaded)."""


# What a worker runs for each table batch of a body: (batch, committed layout, received_at) ->
# the batch staged, or the batch itself when it is better loaded as it is (a name the
# destination cannot store). Picklable: it crosses to the worker process.
Stager = Callable[[TableBatch, Layout, str], "Staged | TableBatch"]


class StalePlan(Exception):
    """A worker's plan the destination cannot load: the table's layout changed since the worker
    planned it (plan it again), or, ``here``, it needs what only a load planned on the event
    loop does (PostgreSQL refused a value, and only a load one data point at a time finds
    which)."""

    def __init__(self, table_name: str, *, here: bool = False) -> None:
        super().__init__(table_name)
        self.table_name = table_name
        self.here = here


class DestinationUnavailable(Exception):
    """The destination cannot be reached at start (a PostgreSQL server that is down): what to
    tell the user, in one line. Once serving, the same is a 503 a client retries."""


class UnknownColumn(ValueError):
    """A filter names a column the table does not have."""

    def __init__(self, column: str) -> None:
        super().__init__(f"no column {column!r}")
        self.column = column


@dataclass(frozen=True)
class TableSummary:
    name: str
    rows: int
    subtables: list[TableSummary] = field(default_factory=list)
    rejected: int = 0  # its records in _sdc_rejected (top-level tables: a subtable has none)
    path: Path | None = None  # its database file; None when it has only rejected records


@dataclass(frozen=True)
class IntegrationSummary:
    client_id: int
    integration: str
    tables: list[TableSummary]


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the Stitch type: integer, double, decimal, string, boolean, timestamp


@dataclass(frozen=True)
class TableDescription:
    name: str
    parent: str | None  # None for a top-level table
    key_names: list[str]  # the top-level table's Stitch key_names
    active_version: int | None
    bookmark_names: list[str] | None
    created_at: str
    columns: list[Column]
    rows: int
    subtables: list[str]


@dataclass(frozen=True)
class RejectedRecord:
    """One row of ``_sdc_rejected``: a record accepted by the API that could not be loaded."""

    rejected_at: str
    table_name: str
    reason: str
    record: Any  # the record as the client sent it (JSON)


@dataclass(frozen=True)
class RejectionReason:
    """How many of a table's records were rejected for one reason, and when last."""

    table_name: str
    reason: str
    count: int
    last_rejected_at: str


class TableReader(Protocol):
    """One table (or subtable), open for reading: its description and rows."""

    @property
    def table(self) -> str: ...

    @property
    def columns(self) -> list[str]: ...

    @property
    def path(self) -> Path | None:
        """Where it is stored, for the user's own tools; None if not in a file of its own."""
        ...

    async def count(self, where: Where = ()) -> int: ...

    async def rows(
        self, where: Where = (), *, limit: int, offset: int = 0
    ) -> list[dict[str, Any]]: ...

    def chunks(self, where: Where = (), size: int = 500) -> AsyncIterator[list[Any]]:
        """Every matching row as a value tuple in ``columns`` order, ``size`` at a time."""
        ...

    async def describe(self) -> TableDescription: ...


class Destination(Protocol):
    # --- loading ---
    def layouts(self, client_id: int, integration: str) -> dict[str, Layout]:
        """The committed layouts of an integration's tables that a worker may plan against,
        by table name; a table not here is planned as new (and re-planned if it is not)."""
        ...

    def stager(self, client_id: int, integration: str) -> Stager:
        """What a worker process runs to plan and stage the integration's table batches."""
        ...

    def guard_writes(self) -> AbstractContextManager[None]:
        """Around work that writes for this destination outside ``load`` (a worker's staging):
        a fault of its disk or database becomes ``ServiceUnavailable`` and shows in ``problem``."""
        ...

    async def load(
        self, client_id: int, integration: str, load: TableBatch | Staged, received_at: str
    ) -> LoadResult:
        """One table's data points in one transaction; raises ``StalePlan`` for a staged plan
        made against another layout (nothing is written then), ``ServiceUnavailable`` for a
        fault of the destination."""
        ...

    # --- reading ---
    async def integrations(self) -> list[IntegrationSummary]: ...

    async def tables(self, client_id: int, integration: str) -> list[TableSummary]: ...

    def open_table(
        self, client_id: int, integration: str, table: str
    ) -> AbstractAsyncContextManager[TableReader | None]: ...

    async def rejection_reasons(
        self, client_id: int, integration: str, table: str | None = None
    ) -> list[RejectionReason]: ...

    async def rejected_records(
        self,
        client_id: int,
        integration: str,
        table: str | None = None,
        *,
        limit: int,
        offset: int = 0,
    ) -> tuple[int, list[RejectedRecord]]: ...

    # --- resetting ---
    async def reset_everything(self) -> int:
        """Delete every client's data; the number of clients that had some. Tokens stay."""
        ...

    async def reset_client(self, client_id: int) -> bool: ...

    async def reset_table(self, client_id: int, integration: str, table: str) -> bool:
        """A top-level table, its subtables and its rejected records; False if none."""
        ...

    # --- health and lifetime ---
    async def start(self) -> None:
        """Before serving (not for a one-off command): what the destination needs ready."""
        ...

    async def problem(self) -> str | None:
        """Why it cannot take writes now, or None (``/v2/import/status``, readyz)."""
        ...

    def next_change(self) -> asyncio.Event:
        """Set when the next load commits. Take it *before* reading what a load may change."""
        ...

    def stop_waiters(self) -> None:
        """Wake every reader waiting for a change, for good (shutting down)."""
        ...

    @property
    def is_stopping(self) -> bool:
        """Whether ``stop_waiters`` was called: a reader should not wait again."""
        ...

    async def close(self) -> None: ...
