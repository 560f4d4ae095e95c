"""A throwaway PostgreSQL cluster for the tests: ``initdb`` and ``pg_ctl`` from the server's
binaries, on a free port, in a temporary directory, stopped (and its files gone) at the end.

Debian's ``postgresql`` package puts the binaries under ``/usr/lib/postgresql/<version>/bin``;
``.ci/run`` installs it. As root, PostgreSQL refuses to run, so the cluster runs as the
``postgres`` user (``runuser -u postgres --``) in a directory it owns. Without the binaries the
tests that need a cluster skip, with the line that installs them; under ``CI=true`` they fail.

The benchmarks use it too (``from tests.pg_cluster import Cluster``): it needs nothing but the
standard library until a test asks for ``require_binaries``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

INSTALL = "apt-get install -y postgresql"


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=_version)
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _version(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in path.parent.parent.name.split(".") if part.isdigit())


def require_binaries() -> Path:
    """The binaries, or the test skips (fails under ``CI=true``) with the install line."""
    import pytest

    found = server_binaries()
    if found is not None:
        return found
    reason = f"PostgreSQL's server binaries (initdb, pg_ctl) are missing: {INSTALL}"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason} (CI must run the PostgreSQL tests; .ci/run installs them)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One PostgreSQL server on 127.0.0.1; ``url(database)`` to reach it."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="importapi-lite-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres")

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, text=True)

    def start(self) -> None:
        self._run(
            str(self.binaries / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",  # a throwaway cluster: no fsync while it is made
        )
        self.resume()

    def resume(self) -> None:
        """Start the server (again, after ``halt``)."""
        self._run(
            str(self.binaries / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200",
            "start",
        )

    def halt(self) -> None:
        """Stop the server, keeping its data (``resume`` starts it again)."""
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-w", "stop", "-m", "fast")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self._run(
            str(self.binaries / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            name,
        )
        return self.url(name)

    def restart(self) -> None:
        # Not ``pg_ctl restart``: without ``-l`` its server would keep our output pipe open.
        self.halt()
        self.resume()

    def stop(self) -> None:
        try:
            self.halt()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
