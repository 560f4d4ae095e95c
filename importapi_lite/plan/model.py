"""A load plan's data: a file's layout (its tables and their typed columns), the data points placed
in it, the steps of a load, and the record plans that place look-alike records. Pure.

A destination reads these and nothing else of the planner: ``LoadPlan`` says what to create and
what to write, ``cells``, ``point_rows`` and ``child_rows`` read a step's rows out in the order
its statements want.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from types import MappingProxyType
from typing import Any

from ..models import ActivateVersion, Message
from .names import CHILD_SYSTEM, PARENT_SYSTEM, PRIMARY_KEY, fold, source_key_column
from .shape import Mismatch


@dataclass
class TableInfo:
    """One SQL table of a database file: a top-level table or one of its subtables."""

    name: str
    parent: str | None
    key_columns: tuple[str, ...]  # the SQL primary key
    key_names: tuple[str, ...]  # top-level: the Stitch key_names; subtables: ()
    columns: dict[str, str] = field(default_factory=dict)  # every column → Stitch type, in order
    # Each column by its name as SQLite compares names (ASCII case folded), to find collisions.
    folded: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folded = {fold(c): c for c in self.columns}

    @property
    def data_columns(self) -> list[str]:
        system = PARENT_SYSTEM if self.parent is None else CHILD_SYSTEM
        return [c for c in self.columns if c not in system]


Layout = dict[str, TableInfo]  # every table of one database file, by name


class Seen(enum.Enum):
    """What a signature's records left when they left no plan."""

    ONCE = "once"  # one record of it was placed: the second leaves a plan
    UNPLANNED = "unplanned"  # its cells depend on more than their types: no plan


# Record plans by signature (``_Placer.plans``): a plan, or why there is none (yet).
Plans = dict[tuple[Any, ...], "CellsPlan | RecordPlan | Seen"]


@dataclass(frozen=True)
class Rejection:
    reason: str
    record: dict[str, Any]


@dataclass
class Point:
    """One accepted data point: its parent row and its subtable rows, all by column name."""

    row: dict[str, Any]
    children: dict[str, list[dict[str, Any]]]


_NO_CHILDREN: Mapping[str, list[dict[str, Any]]] = MappingProxyType({})


@dataclass(slots=True)
class PlannedPoint:
    """A data point without subtable rows, placed by its signature's plan: its cells as a
    tuple in the plan's column order. No dict is built for it; ``cells`` reads its cells out
    in any column order at C speed, and that is all a load needs of a row."""

    values: tuple[Any, ...]  # in ``plan.columns`` order, then one None: absent columns
    plan: CellsPlan

    @property
    def row(self) -> dict[str, Any]:
        """The row by column name, as ``Point.row`` (for readers other than the load)."""
        return dict(zip(self.plan.row_columns, self.values, strict=False))

    @property
    def children(self) -> Mapping[str, list[dict[str, Any]]]:
        return _NO_CHILDREN


AnyPoint = Point | PlannedPoint


def cells(points: list[AnyPoint], columns: list[str]) -> list[tuple[Any, ...]]:
    """Each point's cells in ``columns`` order, None where it has none."""
    wanted = tuple(columns)
    getters: dict[int, Any] = {}  # by id(plan): a batch has a few plans, all alive here
    last_plan, last_getter = None, None
    result = []
    for point in points:
        if type(point) is PlannedPoint:
            plan = point.plan
            if plan is not last_plan:
                last_getter = getters.get(id(plan))
                if last_getter is None:
                    last_getter = getters[id(plan)] = _getter(plan, wanted)
                last_plan = plan
            result.append(last_getter(point.values))  # type: ignore[misc]
        else:
            result.append(tuple(map(point.row.get, wanted)))
    return result


def point_rows(points: list[AnyPoint], identity: list[str], first: int) -> list[tuple[Any, ...]]:
    """Each data point's ``identity`` cells after its ordinal (the first's is ``first``): how
    the load links a point to its subtable rows (``child_rows``)."""
    return [(first + i, *c) for i, c in enumerate(cells(points, identity))]


def child_rows(
    points: list[AnyPoint], subtable: str, columns: list[str], first: int
) -> list[tuple[Any, ...]]:
    """The rows of ``subtable`` the data points carry, ``columns`` of each after its data
    point's ordinal (``point_rows``)."""
    return [
        (first + i, *map(row.get, columns))
        for i, point in enumerate(points)
        for row in point.children.get(subtable, ())
    ]


@functools.lru_cache(maxsize=1024)
def _getter(plan: CellsPlan, wanted: tuple[str, ...]) -> Any:
    """``plan.getter(wanted)``, made once: a group commit's pushes share their plans, and
    making an itemgetter was a large share of what the table's thread spent on each."""
    return plan.getter(wanted)


@dataclass
class RowsStep:
    points: list[AnyPoint] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ScratchRows:
    """A step's rows once written to a scratch file (``store/sqlite/scratch.py``): data points
    ``first`` to ``first + count - 1`` by ordinal, and by subtable name, the ``(offset, count)`` of
    its rows in the file's table of that subtable."""

    first: int
    count: int
    children: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class LoadPlan:
    table: TableInfo | None  # None when nothing was accepted into a table that does not exist
    layout: Layout  # every table of the file after the load
    new_tables: list[str]  # created by this load, parents first
    new_columns: list[tuple[str, str]]  # (table, column) added to tables that existed
    steps: list[RowsStep | ActivateVersion] | list[ScratchRows | ActivateVersion]
    rejected: list[Rejection]
    accepted_upserts: int

    @property
    def subtables(self) -> list[TableInfo]:
        return [t for t in self.layout.values() if t.parent is not None]


def raw_record(message: Message) -> dict[str, Any]:
    """The data point as the client sent it, for ``_sdc_rejected.record``."""
    if isinstance(message, ActivateVersion):
        return {"action": "activate_version", "sequence": message.sequence}
    record: dict[str, Any] = {
        "action": "upsert",
        "sequence": message.sequence,
        "key_names": list(message.key_names),
        "data": message.data,
    }
    if message.table_version is not None:
        record["table_version"] = message.table_version
    return record


@dataclass(frozen=True, slots=True)
class CellsPlan:
    """How the scalars of one row become its cells."""

    columns: tuple[str, ...]  # the column of each stored field
    kept: tuple[int, ...] | None  # which fields are stored (untyped nulls are not); None: all
    converters: tuple[tuple[int, Any], ...]  # (field index, value -> stored value)
    system: tuple[str, ...] = ()  # a flat record's plan: the system columns its points lead with

    @property
    def row_columns(self) -> tuple[str, ...]:
        return (*self.system, *self.columns)

    def getter(self, wanted: tuple[str, ...]) -> Any:
        """What reads a planned point's cells in ``wanted`` order (its values end in None, the
        cell of every column it lacks)."""
        index = {c: i for i, c in enumerate(self.row_columns)}
        absent = len(index)
        positions = [index.get(c, absent) for c in wanted]
        if len(positions) == 1:  # itemgetter of one index gives the item, not a tuple
            return lambda values: (values[positions[0]],)
        return itemgetter(*positions)

    def _converted(self, values: Any) -> Any:
        """The stored fields' values, converted; raises ``Mismatch``."""
        if self.converters or self.kept is not None:
            values = list(values)
            for index, convert in self.converters:
                values[index] = convert(values[index])
            if self.kept is not None:
                values = [values[i] for i in self.kept]
        return values

    def planned(self, values: Any, system: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """A ``PlannedPoint``'s values for a record whose scalars are ``values``; None if a
        value cannot be converted by its type alone."""
        try:
            return (*system, *self._converted(values), None)
        except Mismatch:
            return None

    def row(self, values: Any, system: dict[str, Any]) -> dict[str, Any] | None:
        """The row of a record whose scalars are ``values`` (in ``shape``'s order): its cells
        added to ``system`` (its system cells, changed in place); None if a value cannot be
        converted by its type alone."""
        try:
            values = self._converted(values)
        except Mismatch:
            return None
        system.update(zip(self.columns, values, strict=True))
        return system


@dataclass(frozen=True, slots=True)
class ChildPlan:
    table: str
    levels: dict[str, int]  # the row's level columns and element positions
    cells: CellsPlan


@dataclass(frozen=True, slots=True)
class RecordPlan:
    """How records of one signature with arrays load: the parent row's cells, then each
    subtable row's (a signature without arrays has a ``CellsPlan`` alone)."""

    cells: CellsPlan
    key_columns: tuple[str, ...]  # the parent's: its subtable rows link to it by them
    children: tuple[ChildPlan, ...]

    def point(self, values: Any, elements: list[list[Any]], system: dict[str, Any]) -> Point | None:
        row = self.cells.row(values, system)
        if row is None:
            return None
        links = {source_key_column(k): row[k] for k in self.key_columns}
        system_cells = {c: row[c] for c in CHILD_SYSTEM}
        children: dict[str, list[dict[str, Any]]] = {}
        for child, child_values in zip(self.children, elements, strict=True):
            child_row = child.cells.row(child_values, links | child.levels | system_cells)
            if child_row is None:
                return None
            children.setdefault(child.table, []).append(child_row)
        return Point(row, children)


def layout_from_rows(
    meta: list[tuple[str, str | None, list[str]]], columns: Mapping[str, list[tuple[str, str]]]
) -> Layout:
    """A file's layout from its metadata tables: (name, parent, key_names) and columns by table."""
    layout: Layout = {}
    for name, parent, key_names in meta:
        info_columns = dict(columns.get(name, []))
        if parent is None:
            keys = tuple(key_names) or (PRIMARY_KEY,)
        else:
            keys = tuple(
                c for c in info_columns if c.startswith(("_sdc_source_key_", "_sdc_level_"))
            )
        layout[name] = TableInfo(
            name, parent, keys, tuple(key_names) if parent is None else (), info_columns
        )
    return layout


def ordered_columns(
    columns: Sequence[str], key_columns: Sequence[str], system: Sequence[str]
) -> list[str]:
    """A new table's column order: key columns, data columns, then system columns."""
    keys = [c for c in key_columns if c in columns]
    data = [c for c in columns if c not in key_columns and c not in system]
    return [*keys, *data, *(c for c in columns if c in system and c not in key_columns)]
