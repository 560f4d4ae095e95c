"""Figures summarised (medians, percentiles) and printed as one table, each ratio beside the
target issue 5 sets for it and whether this run met it."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    text: str
    met: bool


def at_least(value: float, bound: float, text: str) -> Target:
    return Target(text, value >= bound)


def at_most(value: float, bound: float, text: str) -> Target:
    return Target(text, value <= bound)


@dataclass(frozen=True)
class Row:
    """One line of the table: a case, its median figure, a ratio (to what, the case says)."""

    case: str
    figure: str
    ratio: float | None = None
    target: Target | None = None


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def rate(rows_per_s: float) -> str:
    return f"{rows_per_s:,.0f} rows/s"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def mib(size: float) -> str:
    return f"{size / 2**20:,.1f} MiB"


def print_table(title: str, rows: Sequence[Row]) -> None:
    widths = (max(len(r.case) for r in rows), max(len(r.figure) for r in rows), 6, 24)
    print(title)
    heading = ("case", "median", "ratio", "target")
    print("  ".join(h.ljust(w) for h, w in zip(heading, widths, strict=True)) + "  met")
    print("  ".join("-" * w for w in widths) + "  -------")
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        target = row.target.text if row.target else ""
        met = "" if row.target is None else ("met" if row.target.met else "NOT MET")
        cells = (row.case, row.figure, ratio, target)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + f"  {met}")


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Say on stderr how long a part of the run took, so a long run shows its progress."""
    started = time.perf_counter()
    yield
    print(f"  {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
