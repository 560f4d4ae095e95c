"""The benchmark's options: the defaults of the full run (``make bench``) and of ``--quick``.

Every size has a flag; ``--quick`` only changes the defaults, so ``--quick --runs 3`` works.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    runs: int = 5
    durability: str = "fsync"
    workers: int = -1
    records: int = 20_000  # per /batch body
    big_rows: int = 1_000_000
    push_records: int = 5_000
    latency_requests: int = 1_000
    connections: int = 64
    load_seconds: int = 10
    load_generator: str = "auto"
    bodies_per_sender: int = 3  # two tables vs one
    starts: int = 7
    uploads: int = 64
    upload_records: int = 20_000  # per upload, padded to near 4 MiB
    wal_minutes: float = 5.0
    only: str = ""  # comma-separated PARTS; empty: all of them


QUICK = Options(
    runs=1,
    records=2_000,
    big_rows=100_000,
    push_records=1_000,
    latency_requests=200,
    load_seconds=3,
    bodies_per_sender=2,
    starts=3,
    upload_records=400,
    wal_minutes=0.5,
)
PARTS = ("sqlite", "postgres", "processes")

HELP = {
    "runs": "measured runs per case, after one warm-up; figures are medians",
    "durability": "the server's --durability; the ceiling syncs the same way",
    "workers": "the server's --workers (0: everything on its event loop, as before them)",
    "records": "records per /batch body (20,000 make a body of about 4 MB)",
    "big_rows": "rows already in the table of the big-table /batch cases",
    "push_records": "records per /push body, JSON vs Transit",
    "latency_requests": "sequential 1-record pushes for the one-connection p50/p99",
    "connections": "connections of the 1-record push load",
    "load_seconds": "seconds of each 1-record push load",
    "load_generator": "wrk if installed (auto), or the Python one in bench/loadgen.py",
    "bodies_per_sender": "/batch bodies each of the two senders sends, two tables vs one",
    "starts": "server starts timed from exec to the first 200 on /v2/import/status",
    "uploads": "concurrent /batch uploads of about 4 MiB while peak RSS is measured",
    "upload_records": "records per upload of the peak-RSS case, padded to near 4 MiB",
    "wal_minutes": "minutes of sustained /batch load while the -wal files are sampled",
    "only": "the parts to run, comma-separated: sqlite (issue 5's figures), postgres (/batch "
    "into PostgreSQL against a bare COPY upsert), processes (1-record pushes, --processes 2 vs "
    "1); all when empty",
}
CHOICES = {"durability": ("fsync", "fast"), "load_generator": ("auto", "wrk", "python")}


def parse(argv: list[str] | None = None, description: str = "") -> Options:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run of every figure, about 2 min"
    )
    for f in dataclasses.fields(Options):
        kind = float if f.type == "float" else int if f.type == "int" else str
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=kind,
            choices=CHOICES.get(f.name),
            help=f"{HELP[f.name]} (full: {f.default}, quick: {getattr(QUICK, f.name)})",
        )
    arguments = vars(parser.parse_args(argv))
    preset = QUICK if arguments.pop("quick") else Options()
    given = {k: v for k, v in arguments.items() if v is not None}
    options = dataclasses.replace(preset, **given)
    if options.big_rows < 2 * options.records:
        parser.error("--big-rows must be at least twice --records")
    unknown = set(options.only.split(",")) - {"", *PARTS}
    if unknown:
        parser.error(f"--only takes {', '.join(PARTS)}, not {', '.join(sorted(unknown))}")
    return options


def wanted(options: Options, part: str) -> bool:
    return not options.only or part in options.only.split(",")
