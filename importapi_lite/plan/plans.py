"""Plan a table batch's load: rejections, new tables and columns, and the rows to write.

Pure: no I/O. A destination reads the table's ``Layout`` and runs the plan in one transaction.
Each data point is shaped (``shape.py``) and its cells placed in columns: a cell keeps its name
while its type matches the column's, otherwise it goes to a split column ``<name>__<suffix>``
(SPEC §12.4). A data point that cannot load is rejected whole, parent and subtables, into
``_sdc_rejected`` with the reason (SPEC §13.8); the request was still accepted.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..models import ActivateVersion, TableBatch, Upsert
from .model import (
    AnyPoint,
    CellsPlan,
    ChildPlan,
    Layout,
    LoadPlan,
    PlannedPoint,
    Plans,
    Point,
    RecordPlan,
    Rejection,
    RowsStep,
    Seen,
    TableInfo,
    raw_record,
)
from .names import (
    BATCHED_AT,
    CHILD_SYSTEM,
    EXTRACTED_AT,
    PARENT_SYSTEM,
    PRIMARY_KEY,
    RECEIVED_AT,
    SEQUENCE,
    TABLE_VERSION,
    Limits,
    field_name_problem,
    fold,
    level_column,
    source_key_column,
)
from .shape import (
    INTEGER,
    STRING,
    SUFFIXES,
    Cell,
    SchemaNode,
    Shaped,
    compile_schema,
    conversions,
    parse_timestamp,
    shape,
    signature,
)

MAX_COLUMNS = Limits().max_columns
KEY_MISMATCH = "Keys for table do not match Primary Keys of incoming data"


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def extracted_at(time_extracted: str | None) -> str | None:
    """``time_extracted`` as our timestamp text. One that is no date-time cannot be loaded
    into ``_sdc_extracted_at`` (a timestamp in a warehouse): the record is rejected."""
    if time_extracted is None:
        return None
    stamp = parse_timestamp(time_extracted)
    if stamp is None:
        raise _Rejected(f"time_extracted {time_extracted} is not a date-time")
    return stamp


def plan_load(
    batch: TableBatch,
    layout: Layout,
    received_at: str,
    batched_at: str,
    *,
    limits: Limits = Limits(),  # noqa: B008 - frozen: one instance serves every call
    reuse_plans: bool = True,  # False: every record the general way (tests compare both)
    plans: Plans | None = None,
) -> LoadPlan:
    """``limits``: the destination's (its default: SQLite's). ``plans``: the record plans of
    earlier calls to share, and to add to: a group commit's one-record pushes would never
    follow a plan of their own. Valid only for calls in a row, for one table, without a schema,
    each on the layout the last one made, with the same limits.
    """
    # A shallow copy: the placer never changes a TableInfo, it replaces it with a changed copy.
    working = dict(layout)
    # A plan is followed from a signature's third record: in this batch, or in those sharing.
    reuse = reuse_plans and (plans is not None or len(batch.messages) > 2)
    if plans is not None and batch.schema is not None:
        raise ValueError("record plans are shared only by batches without a schema")
    placer = _Placer(batch.table_name, working, received_at, batched_at, limits, reuse, plans)
    schema = compile_schema(batch.schema)
    steps: list[RowsStep | ActivateVersion] = []
    rejected: list[Rejection] = []
    for message in batch.messages:
        if isinstance(message, ActivateVersion):
            if message.table_version is not None:  # without a version: a no-op (SPEC §10.5)
                steps.append(message)
            continue
        try:
            point = placer.place_record(message, schema)
        except _Rejected as exc:
            rejected.append(Rejection(exc.reason, raw_record(message)))
            continue
        if not steps or not isinstance(steps[-1], RowsStep):
            steps.append(RowsStep())
        step = steps[-1]
        assert isinstance(step, RowsStep)
        step.points.append(point)
    new_tables = [name for name in working if name not in layout]
    new_columns = [
        (name, column)
        for name, info in layout.items()
        if working[name] is not info  # a table that grew was replaced by its grown copy
        for column in working[name].columns
        if column not in info.columns
    ]
    return LoadPlan(
        table=working.get(batch.table_name),
        layout=working,
        new_tables=new_tables,
        new_columns=new_columns,
        steps=steps,
        rejected=rejected,
        accepted_upserts=placer.accepted,
    )


def rebase(
    plan: LoadPlan,
    table_name: str,
    planned_for: Layout,
    current: Layout,
    limits: Limits = Limits(),  # noqa: B008 - frozen: one instance serves every call
) -> LoadPlan | None:
    """The plan made against ``planned_for``, for ``current`` instead; None unless it would
    have been made the same there.

    Layouts only grow: a concurrent load may have added tables and columns since the plan was
    made (two senders creating one table, say). Every cell's column was chosen by whether its
    name, or its split name, existed with its type; so the plan holds if every table and column
    it uses exists in ``current`` as it does in the plan (same keys, same types) or not at all,
    no new name meets an existing one by case, and no table passes the column limit. Only the
    tables and columns to create are worked out again.
    """
    if current == planned_for:
        return plan
    if any(name not in current for name in planned_for):
        return None  # a table was removed (a reset): start over
    merged = dict(current)
    new_tables: list[str] = []
    new_columns: list[tuple[str, str]] = []
    for name, info in plan.layout.items():
        existing = current.get(name)
        if existing is None:
            if any(fold(other) == fold(name) for other in current):
                return None
            merged[name] = info
            new_tables.append(name)
            continue
        same_table = (existing.parent, existing.key_columns, existing.key_names) == (
            info.parent,
            info.key_columns,
            info.key_names,
        )
        if not same_table:
            return None
        added = {}
        for column, type_ in info.columns.items():
            known = existing.columns.get(column)
            if known is None:
                if fold(column) in existing.folded:
                    return None
                added[column] = type_
            elif known != type_:
                return None
        if added:
            grown = TableInfo(
                name, info.parent, info.key_columns, info.key_names, existing.columns | added
            )
            if len(grown.columns) > limits.max_columns:
                return None
            merged[name] = grown
            new_columns += [(name, column) for column in added]
    return LoadPlan(
        table=merged.get(table_name),
        layout=merged,
        new_tables=new_tables,
        new_columns=new_columns,
        steps=plan.steps,
        rejected=plan.rejected,
        accepted_upserts=plan.accepted_upserts,
    )


def _copy(info: TableInfo) -> TableInfo:
    return TableInfo(info.name, info.parent, info.key_columns, info.key_names, dict(info.columns))


def _writable(draft: Layout, info: TableInfo) -> TableInfo:
    """The data point's own copy of a table, made the first time it needs to change it."""
    if info.name not in draft:
        draft[info.name] = _copy(info)
    return draft[info.name]


class _Placer:
    """Places shaped data points into the tables of one file, growing them as needed."""

    def __init__(
        self,
        table: str,
        layout: Layout,
        received_at: str,
        batched_at: str,
        limits: Limits,
        reuse_plans: bool = True,
        plans: Plans | None = None,
    ) -> None:
        self.table = table
        self.layout = layout
        self.limits = limits
        self.received_at = received_at
        self.batched_at = batched_at
        self.accepted = 0
        # Records of one signature (field names and value types, object by object and element
        # by element, and key_names) load alike: by signature, its plan, or how often seen.
        self.plans: Plans | None = None
        if reuse_plans:
            self.plans = {} if plans is None else plans
        # The system cells of the last record placed by a plan, by what they are made of:
        # a batch's records mostly share one sequence, table version and time_extracted.
        self._system: tuple[tuple[Any, ...], tuple[Any, ...]] = ((), ())

    def place_record(self, message: Upsert, schema: SchemaNode | None) -> AnyPoint:
        """Place one record: by its signature's plan if it has one, else the general way.

        The general way shapes every cell and chooses its column and table; most records of a
        batch look alike, so the second of each signature leaves a plan (the columns of each
        row it makes, and the few value conversions) that the rest follow, for a fraction of
        the cost. The first does not: a signature seen once, such as an array of a length no
        other record has, is not worth a plan.
        """
        data = message.data
        types = tuple(map(type, data.values()))
        plans = self.plans
        if plans is None:
            return self.place(message, shape(data, schema))
        values: Any = data.values()
        elements: list[list[Any]] = []  # the scalars of each subtable row, in shape()'s order
        if dict in types or list in types:
            values = []
            nested = signature(data, values, elements)
            if nested is None:  # an array of arrays
                return self.place(message, shape(data, schema))
            key: tuple[Any, ...] = (nested, message.key_names)
        else:
            key = (tuple(data), types, message.key_names)
        plan = plans.get(key)
        if type(plan) is CellsPlan:  # one row: the common case, kept short
            planned = plan.planned(values, self._system_cells(message))
            if planned is not None:  # else a value its plan cannot convert: the general way
                self.accepted += 1
                return PlannedPoint(planned, plan)
            return self.place(message, shape(data, schema))
        if type(plan) is RecordPlan:
            point = plan.point(values, elements, self._system_row(message))
            if point is not None:
                self.accepted += 1
                return point
            return self.place(message, shape(data, schema))
        shaped = shape(data, schema)
        point = self.place(message, shaped)
        if plan is None and len(plans) < MAX_PLANS:
            plans[key] = Seen.ONCE
        elif plan is Seen.ONCE:
            try:
                plans[key] = self._record_plan(message, shaped, list(values), elements)
            except _Rejected:  # cannot happen for a record just placed; never reject it late
                plans[key] = Seen.UNPLANNED
        return point

    def _record_plan(
        self, message: Upsert, shaped: Shaped, values: list[Any], elements: list[list[Any]]
    ) -> CellsPlan | RecordPlan | Seen:
        """The plan a record just placed leaves for its signature, given its scalars as
        ``signature`` lists them; ``Seen.UNPLANNED`` if its cells depend on more than their
        types (an integer past 64 bits, text that is no date)."""
        cells = self._cells(self.table, shaped.cells, values)
        if cells is None:
            return Seen.UNPLANNED
        children = []
        for child, child_values in zip(shaped.children, elements, strict=True):
            name = f"{self.table}__{child.path}"
            child_cells = self._cells(name, child.cells, child_values)
            if child_cells is None:
                return Seen.UNPLANNED
            levels = {level_column(n): i for n, i in enumerate(child.levels)}
            children.append(ChildPlan(name, levels, child_cells))
        if not children:  # its points are PlannedPoints: system cells, then these
            return replace(cells, system=_system_columns(message.key_names))
        return RecordPlan(cells, self.layout[self.table].key_columns, tuple(children))

    def _cells(self, table: str, cells: list[Cell], values: list[Any]) -> CellsPlan | None:
        """How one row's scalars become its cells, as they just did for this placed record;
        None if one of them took a conversion other than its kind's first (``conversions``)."""
        info = _copy(self.layout[table])  # every column it needs exists: nothing is added
        columns: list[str] = []
        kept: list[int] = []
        converters: list[tuple[int, Any]] = []
        for index, (cell, value) in enumerate(zip(cells, values, strict=True)):
            if cell.value is None or cell.type is None:
                continue  # a null is stored nowhere: its column, if any, reads NULL
            stitch_type, convert = conversions(type(value), cell.declared)[0]
            if stitch_type != cell.type:
                return None  # its value, not its kind, chose the conversion
            if convert is not None:
                converters.append((index, convert))
            if info.columns.get(cell.name) == cell.type and cell.name[:1] != "_":
                columns.append(cell.name)
            else:
                columns.append(_column_for(info, cell.name, cell.type, cell.base))
            kept.append(index)
        all_kept = len(kept) == len(values)
        return CellsPlan(tuple(columns), None if all_kept else tuple(kept), tuple(converters))

    def _system_cells(self, message: Upsert) -> tuple[Any, ...]:
        """The record's system cells, in ``_system_columns`` order."""
        made_of = (message.sequence, message.table_version, message.time_extracted)
        if self._system[0] != made_of:
            cells = (
                message.sequence,
                message.table_version,
                self.received_at,
                self.batched_at,
                extracted_at(message.time_extracted),
            )
            self._system = (made_of, cells)
        if not message.key_names:  # append-only rows get a random id (SPEC §10.3)
            return (*self._system[1], str(uuid.uuid4()))
        return self._system[1]

    def _system_row(self, message: Upsert) -> dict[str, Any]:
        """The record's system cells: a new dict, which its row may be built in."""
        columns = _system_columns(message.key_names)
        return dict(zip(columns, self._system_cells(message), strict=True))

    def place(self, message: Upsert, shaped: Shaped) -> Point:
        problem = self.limits.table_problem(self.table)
        if problem is not None:
            raise _Rejected(problem)
        # Every change is made to a draft of copies, adopted only if the whole data point fits.
        draft: Layout = {}
        parent = self._table(draft, self.table, None, message.key_names, shaped)
        if parent.key_names != message.key_names:
            raise _Rejected(KEY_MISMATCH)  # the first accepted key_names define the table
        system = {
            SEQUENCE: message.sequence,
            TABLE_VERSION: message.table_version,
            RECEIVED_AT: self.received_at,
            BATCHED_AT: self.batched_at,
        }
        extracted = {EXTRACTED_AT: extracted_at(message.time_extracted)}
        row = self._row(draft, parent, shaped.cells, system | extracted)
        if not message.key_names:
            row[PRIMARY_KEY] = str(uuid.uuid4())  # append-only rows get a random id (SPEC §10.3)
        links = {source_key_column(k): row[k] for k in parent.key_columns}
        children: dict[str, list[dict[str, Any]]] = {}
        for child in shaped.children:
            name = f"{self.table}__{child.path}"
            problem = self.limits.table_problem(name)
            if problem is not None:
                raise _Rejected(problem)
            info = self._table(draft, name, parent, (), None, depth=len(child.levels))
            levels = {level_column(n): i for n, i in enumerate(child.levels)}
            base = links | levels | system
            children.setdefault(name, []).append(self._row(draft, info, child.cells, base))
        for info in draft.values():
            if len(info.columns) > self.limits.max_columns:
                raise _Rejected(
                    f"Too many columns: table {info.name} would have {len(info.columns)}"
                )
            known = self.layout.get(info.name)
            for column in info.columns:  # the columns this data point makes
                if known is None or column not in known.columns:
                    problem = self.limits.column_problem(column)
                    if problem is not None:
                        raise _Rejected(problem)
        self.layout.update(draft)
        self.accepted += 1
        return Point(row, children)

    def _table(
        self,
        draft: Layout,
        name: str,
        parent: TableInfo | None,
        key_names: tuple[str, ...],
        shaped: Shaped | None,
        depth: int = 0,
    ) -> TableInfo:
        known = draft.get(name) or self.layout.get(name)
        if known is not None:
            return known
        if any(fold(other) == fold(name) for other in (*self.layout, *draft)):
            raise _Rejected(f"Table name collision on {name}")  # SQLite ignores the case
        if parent is None:
            assert shaped is not None
            if key_names:  # keys are validated present and non-null, so always typed
                folded_keys = set()
                for key in key_names:  # they become columns: the same rules as any field
                    _check_field_name(key, in_subtable=False)
                    if fold(key) in folded_keys:
                        raise _Rejected(f"Field collision on {key}")
                    folded_keys.add(fold(key))
                cells = {c.name: c for c in shaped.cells}
                # A schema types the key column, so a value no bigint holds is rejected in
                # any order; else the first record's values do.
                columns = {k: cells[k].base or cells[k].type or STRING for k in key_names}
            else:
                columns = {PRIMARY_KEY: STRING}
            info = TableInfo(name, None, tuple(columns), key_names, columns | PARENT_SYSTEM)
        else:
            links = {source_key_column(k): parent.columns[k] for k in parent.key_columns}
            levels = {level_column(n): INTEGER for n in range(depth)}
            info = TableInfo(
                name, parent.name, (*links, *levels), (), links | levels | CHILD_SYSTEM
            )
        draft[name] = info
        return info

    def _row(
        self, draft: Layout, info: TableInfo, cells: list[Cell], base: dict[str, Any]
    ) -> dict[str, Any]:
        row = dict(base)
        for cell in cells:
            if cell.value is None or cell.type is None:  # a null fits any column: never a split
                _check_field_name(cell.name, info.parent is not None)
                if cell.type is not None and fold(cell.name) not in info.folded:
                    info = _writable(draft, info)  # the schema types its column: make it
                    _column_for(info, cell.name, cell.type, cell.base)
                continue
            # The common case first: a data column of this type exists. System columns all
            # start with "_", and so must never be matched here (SPEC §13.8).
            if info.columns.get(cell.name) == cell.type and cell.name[:1] != "_":
                column = cell.name
            else:
                info = _writable(draft, info)
                column = _column_for(info, cell.name, cell.type, cell.base)
            if column in row:
                raise _Rejected(f"Field collision on {column}")
            row[column] = cell.value
        return row


def _system_columns(key_names: tuple[str, ...]) -> tuple[str, ...]:
    """A top-level row's system columns: append-only rows have a made-up primary key too."""
    return _PARENT_SYSTEM_COLUMNS if key_names else _APPEND_ONLY_SYSTEM_COLUMNS


_PARENT_SYSTEM_COLUMNS = tuple(PARENT_SYSTEM)
_APPEND_ONLY_SYSTEM_COLUMNS = (*PARENT_SYSTEM, PRIMARY_KEY)
MAX_PLANS = 4096  # signatures followed per batch; past them, records go the general way


def _check_field_name(name: str, in_subtable: bool) -> None:
    problem = field_name_problem(name, in_subtable)
    if problem is not None:
        raise _Rejected(problem)


def _column_for(info: TableInfo, name: str, type_: str, base: str | None = None) -> str:
    """The column a value of ``type_`` for field ``name`` loads into, added to ``info`` if new:
    the bare column (made with the ``base`` type if the schema gives one) if it holds
    ``type_``, else the split column ``<name>__<suffix>`` (SPEC §12.4)."""
    _check_field_name(name, info.parent is not None)
    if name in info.key_columns and info.columns[name] != type_:
        raise _Rejected(f"Key column {name} changed type from {info.columns[name]} to {type_}")
    if _claim(info, name, base or type_) == type_:
        return name
    split = f"{name}__{SUFFIXES[type_]}"
    if _claim(info, split, type_) == type_:
        return split
    raise _Rejected(f"Field collision on {split}")


def split_of(column: str, type_: str, columns: Mapping[str, str]) -> str | None:
    """The field whose values of ``type_`` ``_column_for`` put in ``column``, a split column of
    a table whose column types are ``columns``; None if ``column`` is no split column."""
    name, sep, suffix = column.rpartition("__")
    if sep and SUFFIXES.get(type_) == suffix and columns.get(name, type_) != type_:
        return name
    return None


def _claim(info: TableInfo, column: str, type_: str) -> str:
    """The type ``column`` holds, created with ``type_`` if it does not exist yet."""
    existing = info.folded.get(fold(column))
    if existing is None:
        info.columns[column] = type_
        info.folded[fold(column)] = column
        return type_
    if existing != column:  # SQLite would see the same column (SPEC §13.8)
        raise _Rejected(f"Field collision on {column}")
    return info.columns[column]
