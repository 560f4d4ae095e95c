"""What the benchmark sends: records, ``/batch`` and ``/push`` bodies built from them.

Bodies are built before a measurement starts, so encoding them is never timed. With 20,000
records a ``/batch`` body is about 4.1 MB, under the 4 MiB default limit: both of the limits
target-stitch splits at (SPEC §14) are reached at once, as in a bulk load.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import io
import json
import uuid

from transit.writer import Writer

CLIENT_ID = 7723
MAX_BODY_BYTES = 4_194_304  # the server's default --max-body-bytes (SPEC §8)
TIMESTAMP = "2026-01-01T00:00:00.000000Z"
SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "a": {"type": "integer"},
        "b": {"type": "string"},
        "c": {"type": "number"},
        "d": {"type": "boolean"},
        "e": {"type": "string"},
        "f": {"type": "integer"},
        "g": {"type": "string", "format": "date-time"},
        "h": {"type": ["null", "string"]},
        "i": {"type": "string"},
    },
}


def key(seed: int, i: int) -> str:
    """A UUID that looks random, so keys land all over the primary-key index as real ones do."""
    h = hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def records(count: int, seed: int, start: int = 0, pad: int = 0) -> list[dict[str, object]]:
    """Ten-field records of about 150 bytes of JSON (plus ``pad`` characters in ``e``)."""
    return [
        {
            "id": key(seed, i),
            "a": i,
            "b": f"name {i}",
            "c": i * 1.5,
            "d": i % 2 == 0,
            "e": "x" * (2 + pad),
            "f": i % 7,
            "g": TIMESTAMP,
            "h": None,
            "i": "y" * 4,
        }
        for i in range(start, start + count)
    ]


def batch_body(table: str, rows: list[dict[str, object]], sequence: int) -> bytes:
    """A ``/batch`` body upserting ``rows``, every one at ``sequence``."""
    messages = [{"action": "upsert", "sequence": sequence, "data": r} for r in rows]
    body = {"table_name": table, "schema": SCHEMA, "key_names": ["id"], "messages": messages}
    return json.dumps(body, separators=(",", ":")).encode()


def batch_body_near(table: str, count: int, seed: int, limit: int = MAX_BODY_BYTES) -> bytes:
    """A ``/batch`` body of ``count`` records padded to just under ``limit`` bytes."""
    plain = len(batch_body(table, records(count, seed), 1))
    if plain > limit:
        raise ValueError(f"{count} records take {plain:,} bytes, over the limit of {limit:,}")
    pad = (limit - plain - 1024) // count
    return batch_body(table, records(count, seed, pad=max(pad, 0)), 1)


def push_records(table: str, count: int, typed: bool) -> list[dict[str, object]]:
    """``/push`` records; ``typed`` carries the values only Transit can: ~m ~f ~u ~i."""
    out = []
    for i, row in enumerate(records(count, 99)):
        data = dict(row)
        if typed:
            data["g"] = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
            data["c"] = decimal.Decimal(f"{i}.25")
            data["id"] = uuid.UUID(str(row["id"]))
            data["a"] = 2**60 + i
        out.append(
            {
                "client_id": CLIENT_ID,
                "table_name": table,
                "sequence": i,
                "action": "upsert",
                "key_names": ["id"],
                "data": data,
            }
        )
    return out


def json_push_body(table: str, count: int) -> bytes:
    return json.dumps(push_records(table, count, typed=False)).encode()


def transit_push_body(table: str, count: int) -> bytes:
    stream = io.StringIO()
    Writer(stream, "json").write(push_records(table, count, typed=True))
    return stream.getvalue().encode()


def one_record_push(table: str, record_id: int, sequence: int) -> bytes:
    record = {
        "client_id": CLIENT_ID,
        "table_name": table,
        "sequence": sequence,
        "action": "upsert",
        "key_names": ["id"],
        "data": {"id": record_id, "v": sequence},
    }
    return json.dumps([record]).encode()
