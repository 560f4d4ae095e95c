"""A throwaway PostgreSQL cluster for the PostgreSQL figures (issue 18), and the few queries the
cases need against it. The cluster is ``tests.pg_cluster``'s (initdb and pg_ctl on a free port,
as the postgres user), with the server's defaults: ``synchronous_commit`` and ``fsync`` on, so a
commit waits for its WAL flush, for the server and the bare script alike.

Without PostgreSQL's server binaries the PostgreSQL cases are skipped: ``start`` yields None and
says so on stderr, and the table carries a row saying so.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from report import Row
from servers import BENCH_DIR, INTEGRATION

SCHEMA = INTEGRATION  # the server's tables: a schema named as the integration


@dataclass(frozen=True)
class Postgres:
    """The benchmark's database, and the postmaster's pid (its backends are its children, so
    ``servers.cpu_seconds`` of it is the CPU PostgreSQL spent)."""

    url: str
    pid: int

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)


@contextmanager
def start() -> Iterator[Postgres | None]:
    sys.path.insert(0, str(BENCH_DIR.parent))  # the repository, for tests.pg_cluster
    from tests.pg_cluster import INSTALL, Cluster, server_binaries

    binaries = server_binaries()
    if binaries is None:
        print(f"  PostgreSQL cases skipped: no server binaries ({INSTALL})", file=sys.stderr)
        yield None
        return
    cluster = Cluster(binaries)
    cluster.start()
    try:
        url = cluster.create_database("bench")
        pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
        yield Postgres(url, pid)
    finally:
        cluster.stop()


def skipped(what: str) -> Row:
    return Row(f"{what}: skipped, no PostgreSQL server binaries (initdb, pg_ctl)", "")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def columns(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    """The table's columns, in order."""
    found = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    if not found:
        raise RuntimeError(f"no table {schema}.{table}")
    return [name for (name,) in found]


def count_rows(conn: psycopg.Connection, tables: list[str]) -> int:
    """Rows in the server's ``tables`` together."""
    total = 0
    for table in tables:
        found = conn.execute(f"SELECT count(*) FROM {SCHEMA}.{quote(table)}").fetchone()
        total += int(found[0]) if found else 0
    return total


def checkpoint(conn: psycopg.Connection) -> None:
    """Every timed load starts with the WAL flushed, so no checkpoint of earlier work lands in
    one case's timing more than in another's."""
    conn.execute("CHECKPOINT")
