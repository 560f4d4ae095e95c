"""Where a ``/batch`` body's time goes (a fresh table's first two bodies, as in the fresh-table
insert case), measured in this process before any server runs, and the
bound those costs put on the end-to-end ratios; then the loading model's cost per record shape,
reported separately (issue 5).

A body's life on the server: a worker decodes, validates, plans and stages it (``P``: Python,
per record), then the store moves the staged rows into the table (``M``: SQLite, one
``INSERT … SELECT``). The ceiling is the bare upsert of the same rows (``bare``). Each of the
two senders waits for its 201 before it sends its next body, so a sender cannot go faster than
one body per ``P + M``, and the pair of them reach at most ``2 · bare / (P + M)`` of the
ceiling, however the cores are shared. The server's real figures are lower still: there the
two senders' work shares two cores with each other and with the HTTP parts.

How far ``P`` could fall: ``_least_per_record_work`` does only what no loader of these records
can skip, and is compared with the time the 0.85 target leaves validation and planning.

The same functions the server runs are called here, in the same order: ``decode_body``,
``parse_batch``, ``plan_load``, ``scratch.write_scratch`` (a worker's share), then the
destination's ``load`` of the staged rows (the store's share).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ceiling
from ceiling import TableShape
from options import Options
from report import Row, median
from servers import INTEGRATION
from workload import CLIENT_ID, TIMESTAMP, batch_body, records

from importapi_lite.clock import now_text
from importapi_lite.ingest.codec import JSON, decode_body
from importapi_lite.ingest.validation import parse_batch
from importapi_lite.models import TableBatch
from importapi_lite.plan.plans import plan_load
from importapi_lite.plan.shape import parse_timestamp
from importapi_lite.store.sqlite import SqliteDestination
from importapi_lite.store.sqlite.paths import table_path
from importapi_lite.store.sqlite.scratch import write_scratch

SHAPE_RECORDS = 5_000  # per body of the loading-model cases (fewer with --quick's sizes)
PHASES = ("decode", "validation", "plan", "scratch", "move", "bare", "floor")


def _timed(call: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - started, result


async def body_costs(options: Options) -> list[Row]:
    """A fresh table's first two bodies, phase by phase, as in the fresh-table insert case
    (whose ceiling upserts both bodies, one after the other): per body, medians of
    ``options.runs`` after one more."""
    times: dict[str, list[float]] = {phase: [] for phase in PHASES}
    with tempfile.TemporaryDirectory(prefix="costs-") as scratch:
        work = Path(scratch)
        store = SqliteDestination(work / "data", durability=options.durability)
        scratch = work / "scratch"
        scratch.mkdir()
        try:
            for run in range(options.runs + 1):  # run 0 warms up
                table = f"costs_{run}"
                bodies = [records(options.records, seed=1000 + 2 * run + i) for i in range(2)]
                measured = await _two_bodies(store, scratch, work, table, bodies, options)
                if run:
                    for phase, seconds in measured.items():
                        times[phase].append(seconds)
        finally:
            await store.close()
    return _body_rows({phase: median(values) for phase, values in times.items()}, options)


async def _two_bodies(
    store: SqliteDestination,
    scratch: Path,
    work: Path,
    table: str,
    bodies: list[list[dict[str, object]]],
    options: Options,
) -> dict[str, float]:
    """Each phase's seconds per body, averaged over the two."""
    measured = dict.fromkeys(PHASES, 0.0)
    for rows in bodies:
        body = batch_body(table, rows, 1)
        layout = store.layouts(CLIENT_ID, INTEGRATION).get(table, {})  # as a worker
        seconds, decoded = _timed(decode_body, JSON, body)
        measured["decode"] += seconds / 2
        seconds, _ = _timed(_least_per_record_work, decoded)
        measured["floor"] += seconds / 2
        seconds, batch = _timed(parse_batch, decoded)
        measured["validation"] += seconds / 2
        seconds, plan = _timed(plan_load, batch, layout, TIMESTAMP, now_text())
        measured["plan"] += seconds / 2
        seconds, staged = _timed(write_scratch, batch, plan, layout, scratch)
        measured["scratch"] += seconds / 2
        try:
            started = time.perf_counter()
            await store.load(CLIENT_ID, INTEGRATION, staged, TIMESTAMP)
            measured["move"] += (time.perf_counter() - started) / 2
        finally:
            staged.discard()
    stored = table_path(store.data_dir, CLIENT_ID, INTEGRATION, table)
    shape = TableShape.read(stored, table)
    for rows in bodies:  # the same bytes, or the bound means nothing
        ceiling.check_stored_rows(stored, shape, rows, 1)
    bare = work / f"bare-{table}.db"
    ceiling.create(bare, shape)
    measured["bare"] = ceiling.upsert(bare, shape, bodies, 1, options.durability) / 2
    return measured


def _least_per_record_work(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A floor for validation and planning together: far less than the contract asks (no key,
    sequence or message-shape checks, no columns chosen, nothing rejected), only what no
    loader of these records can skip. Each record's names and types are looked up among the
    valid signatures, its timestamp (``g``, a ``date-time``) normalised, and its row built."""
    valid: set[tuple[Any, ...]] = set()
    system = (1, None, TIMESTAMP, TIMESTAMP, None)
    stamp = list(body["messages"][0]["data"]).index("g")  # every record has workload's fields
    rows = []
    for message in body["messages"]:
        data = message["data"]
        signature = (tuple(data), tuple(map(type, data.values())))
        if signature not in valid:
            valid.add(signature)  # the first record of a signature: validated the long way
        values = list(data.values())
        values[stamp] = parse_timestamp(values[stamp])
        rows.append((*system, *values))
    return rows


def _body_rows(costs: dict[str, float], options: Options) -> list[Row]:
    worker = costs["decode"] + costs["validation"] + costs["plan"] + costs["scratch"]
    per_record = worker / options.records * 1e6
    parts = " + ".join(f"{costs[p] * 1e3:.0f}" for p in ("decode", "validation", "plan", "scratch"))
    bound = 2 * costs["bare"] / (worker + costs["move"])
    # What validation and planning may take for the inserts to reach 0.85 of bare, the rest as
    # now: two senders' bodies in P + 2M, within the 2 · bare / 0.85 that ratio allows.
    room = 2 * costs["bare"] / 0.85 - 2 * costs["move"] - costs["decode"] - costs["scratch"]
    body = f"a {options.records:,}-record body"
    return [
        Row(
            f"{body}, worker's share P: decode + validation + plan + scratch file",
            f"{worker * 1e3:.0f} ms = {parts} ({per_record:.1f} µs/record)",
            worker / costs["bare"],
        ),
        Row(
            f"{body}, the least per-record work (signature, timestamp, row), vs what 0.85 leaves",
            f"{costs['floor'] * 1e3:.0f} ms; validation + plan take "
            f"{(costs['validation'] + costs['plan']) * 1e3:.0f}, 0.85 leaves them "
            + (f"{room * 1e3:.0f}" if room > 0 else "nothing"),
            costs["floor"] / room if room > 0 else None,
        ),
        Row(
            f"{body}, store's share M: the staged rows moved into a fresh table",
            f"{costs['move'] * 1e3:.0f} ms (bare upsert {costs['bare'] * 1e3:.0f} ms)",
            costs["move"] / costs["bare"],
        ),
        Row(
            "bound on /batch inserts from P and M: 2 senders, each awaiting its 201",
            "2 · bare / (P + M), of bare",
            bound,
        ),
    ]


def _shape_records(shape: str, count: int) -> list[dict[str, object]]:
    flat = records(count, seed=77)
    if shape == "nested object (3 fields)":
        return [
            r | {"address": {"street": f"{i} Main St", "city": "x", "zip": i}}
            for i, r in enumerate(flat)
        ]
    if shape == "array of 3 integers":
        return [r | {"tags": [i, i + 1, i + 2]} for i, r in enumerate(flat)]
    return flat


async def loading_model_costs(options: Options) -> list[Row]:
    """Per record, by shape: planning alone, and a whole load on the event loop's path
    (planning, the upsert and its subtable rows, one transaction)."""
    count = min(options.records, SHAPE_RECORDS)
    shapes = ("flat", "nested object (3 fields)", "array of 3 integers")
    figures: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="costs-") as scratch:
        store = SqliteDestination(Path(scratch) / "data", durability=options.durability)
        try:
            for shape in shapes:
                plans, loads = [], []
                for run in range(options.runs + 1):
                    table = f"{shape.split()[0]}_{run}"
                    body = batch_body(table, _shape_records(shape, count), 1)
                    batch: TableBatch = parse_batch(decode_body(JSON, body))
                    planned, _ = _timed(plan_load, batch, {}, TIMESTAMP, now_text())
                    started = time.perf_counter()
                    await store.load(CLIENT_ID, INTEGRATION, batch, TIMESTAMP)
                    if run:
                        plans.append(planned / count)
                        loads.append((time.perf_counter() - started) / count)
                figures[shape] = (median(plans), median(loads))
        finally:
            await store.close()
    flat = figures["flat"][1]
    return [
        Row(
            f"loading model, {shape} records: plan, and plan + SQL, per record",
            f"{plan * 1e6:.1f} µs, {load * 1e6:.1f} µs",
            load / flat,
        )
        for shape, (plan, load) in figures.items()
    ]


async def run(options: Options) -> list[Row]:
    return [*await body_costs(options), *await loading_model_costs(options)]


if __name__ == "__main__":  # this part alone: python bench/costs.py [--quick] [--runs N]
    from options import parse
    from report import print_table

    chosen = parse()
    print_table("where a /batch body's time goes (in-process)", asyncio.run(run(chosen)))
