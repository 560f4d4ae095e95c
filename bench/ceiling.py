"""The ceiling: bare ``sqlite3`` upserts of the rows the server stores, into a table in the same
state: its DDL copied from a table the server created, and for the big-table case a copy of the
very file the server is given.

``stored_row`` spells a record as the server stores it (checked against a table the server
loaded by ``check_stored_rows``), so the ceiling writes the same bytes with the same sequence
rule, in one transaction per request body, synced as the server syncs.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workload import TIMESTAMP

KEY = "id"
SEQUENCE = "_sdc_sequence"
ARRIVAL = (
    "_sdc_received_at",
    "_sdc_batched_at",
)  # the server's clock; the ceiling uses a fixed one
SYNCHRONOUS = {"fsync": "FULL", "fast": "NORMAL"}  # as the server maps --durability


@dataclass(frozen=True)
class TableShape:
    """A table as the server created it: its name, DDL (table and indexes) and column order."""

    table: str
    ddl: tuple[str, ...]
    columns: tuple[str, ...]

    @classmethod
    def read(cls, path: Path, table: str) -> TableShape:
        db = sqlite3.connect(path)
        try:
            ddl = db.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
                "ORDER BY type DESC",  # the table before its indexes
                (table,),
            ).fetchall()
            columns = db.execute("SELECT name FROM pragma_table_info(?)", (table,)).fetchall()
        finally:
            db.close()
        if not ddl:
            raise RuntimeError(f"no table {table!r} in {path}")
        return cls(table, tuple(s for (s,) in ddl), tuple(c for (c,) in columns))

    def upsert_sql(self) -> str:
        names = ", ".join(f'"{c}"' for c in self.columns)
        values = ", ".join("?" for _ in self.columns)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in self.columns if c != KEY)
        return (
            f'INSERT INTO "{self.table}" AS existing ({names}) VALUES ({values}) '
            f'ON CONFLICT ("{KEY}") DO UPDATE SET {updates} '
            f'WHERE excluded."{SEQUENCE}" >= existing."{SEQUENCE}"'
        )

    def stored_row(self, record: dict[str, object], sequence: int) -> tuple[object, ...]:
        """``record`` as the server stores it: booleans as 0/1, its system columns filled in."""
        system: dict[str, object] = {SEQUENCE: sequence, **dict.fromkeys(ARRIVAL, TIMESTAMP)}
        values = {**record, **system}
        return tuple(_stored_value(values.get(c)) for c in self.columns)


def _stored_value(value: object) -> object:
    return int(value) if isinstance(value, bool) else value


def check_stored_rows(
    path: Path, shape: TableShape, rows: list[dict[str, object]], sequence: int
) -> None:
    """Fail unless the server stored ``rows`` exactly as ``stored_row`` spells them (the arrival
    timestamps aside): else the ceiling would write other bytes than the server."""
    compared = [i for i, c in enumerate(shape.columns) if c not in ARRIVAL]
    db = sqlite3.connect(path)
    try:
        stored = {r[0]: r for r in db.execute(f'SELECT "{KEY}", * FROM "{shape.table}"').fetchall()}
    finally:
        db.close()
    for record in rows:
        ours = shape.stored_row(record, sequence)
        theirs = stored[record[KEY]][1:]
        if [ours[i] for i in compared] != [theirs[i] for i in compared]:
            raise RuntimeError(f"the server stored {theirs!r} where the ceiling has {ours!r}")


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    return db


def create(path: Path, shape: TableShape) -> None:
    """A fresh database holding the empty table, as the server's first request leaves it."""
    db = connect(path, "OFF")
    try:
        for statement in shape.ddl:
            db.execute(statement)
    finally:
        db.close()


def fill(path: Path, shape: TableShape, rows: Iterable[dict[str, object]], sequence: int) -> None:
    """Add ``rows`` to the table in one unsynced transaction, then checkpoint (pre-filling only)."""
    db = connect(path, "OFF")
    try:
        db.execute("BEGIN")
        db.executemany(shape.upsert_sql(), (shape.stored_row(r, sequence) for r in rows))
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def upsert(
    path: Path,
    shape: TableShape,
    bodies: list[list[dict[str, object]]],
    sequence: int,
    durability: str,
) -> float:
    """The ceiling: one ``executemany`` upsert transaction per body; the seconds they took."""
    sql = shape.upsert_sql()
    params = [[shape.stored_row(r, sequence) for r in rows] for rows in bodies]
    db = connect(path, SYNCHRONOUS[durability])
    try:
        started = time.perf_counter()
        for body in params:
            db.execute("BEGIN")
            db.executemany(sql, body)
            db.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        db.close()
