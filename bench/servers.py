"""The processes under test: ``importapi-lite serve`` and a bare aiohttp app, each its own process.

The benchmark process only sends requests and times them. Servers run from the console script,
as a user starts them, with ``IMPORTAPI_LITE_*`` variables removed so the caller's setup cannot
change a figure.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from workload import CLIENT_ID, MAX_BODY_BYTES

BENCH_DIR = Path(__file__).resolve().parent
SERVE_ARGS: list[str] = []  # more `serve` options for every server of a run (ingest.py sets them)
INTEGRATION = "import_api"  # what `tokens create` names the integration by default


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (the server's workers and multiprocessing's own)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of ``pid`` and of the processes under it (the
    workers), every thread included."""
    return sum(_stat_cpu(Path(f"/proc/{each}/stat")) for each in [pid, *descendants(pid)])


def main_thread_cpu_seconds(pid: int) -> float:
    """The CPU seconds so far of ``pid``'s first thread alone: a server's event loop."""
    return _stat_cpu(Path(f"/proc/{pid}/task/{pid}/stat"))


def _stat_cpu(stat: Path) -> float:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0  # ended meanwhile
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process's CPU seconds so far: what sending requests costs the client."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("IMPORTAPI_LITE_")}


def importapi_command() -> list[str]:
    """The ``importapi-lite`` console script next to this Python, or ``python -m`` without one."""
    script = Path(sys.executable).with_name("importapi-lite")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "importapi_lite"]


def create_token(data_dir: Path, destination: str | None = None) -> str:
    """A token for ``CLIENT_ID``, saved under ``data_dir``, or in ``destination``'s database."""
    where = ["--destination", destination] if destination else ["--data-dir", str(data_dir)]
    created = subprocess.run(
        [*importapi_command(), "tokens", "create", "--client-id", str(CLIENT_ID), *where],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    if created.returncode:
        raise RuntimeError(f"tokens create failed:\n{created.stderr}")
    return created.stdout.strip().splitlines()[-1]


def table_path(data_dir: Path, table: str) -> Path:
    """The database file of ``table`` (benchmark table names need no encoding)."""
    return data_dir / str(CLIENT_ID) / INTEGRATION / f"{table}.sqlite3"


def wait_for_200(
    process: subprocess.Popen[bytes], port: int, path: str, timeout: float, log: Path | None = None
) -> None:
    """Poll ``path`` every 5 ms until it answers 200; raise if the process exits first."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}\n{output}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.005)
    raise RuntimeError(f"{process.args!r} gave no 200 on {path} within {timeout} s")


def wait_for_listeners(port: int, count: int, timeout: float = 30) -> None:
    """Wait until ``count`` sockets listen on ``port`` (``SO_REUSEPORT``: one a process), so a
    load meets every process, not the first one ready."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if _listening(port) >= count:
            return
        time.sleep(0.01)
    raise RuntimeError(f"fewer than {count} processes listen on port {port} after {timeout} s")


def _listening(port: int) -> int:
    found = 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found += 1  # state 0A: LISTEN
    return found


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Server:
    """``importapi-lite serve`` on a free port over ``data_dir`` (or the PostgreSQL database at
    ``destination``), in ``processes`` processes; ``startup`` is the seconds from exec to the
    first 200 on ``/v2/import/status``."""

    def __init__(
        self,
        data_dir: Path,
        token: str,
        durability: str,
        max_body_bytes: int = MAX_BODY_BYTES,
        *,
        destination: str | None = None,
        processes: int = 1,
    ) -> None:
        self.data_dir = data_dir
        self.token = token
        self.destination = destination
        self.processes = processes
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [*importapi_command(), "serve", "--port", str(self.port)]
        command += ["--data-dir", str(data_dir), "--durability", durability, *SERVE_ARGS]
        command += ["--max-body-bytes", str(max_body_bytes), "--processes", str(processes)]
        if destination:
            command += ["--destination", destination]
        log = data_dir.parent / f"{data_dir.name}-server-{self.port}.log"
        with log.open("wb") as output:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=clean_env()
            )
        try:
            wait_for_200(self.process, self.port, "/v2/import/status", timeout=30, log=log)
            self.startup = time.perf_counter() - started
            wait_for_listeners(self.port, processes)
        except BaseException:
            stop(self.process)
            raise

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def table_path(self, table: str) -> Path:
        return table_path(self.data_dir, table)

    def peak_rss_bytes(self) -> int:
        """The server's VmHWM (the most resident memory it has had since it started) plus its
        worker processes', whose peaks may have come at other times: an upper bound."""
        return sum(_peak_rss(pid) for pid in [self.process.pid, *descendants(self.process.pid)])

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        stop(self.process)


class BareApp:
    """``bench/bare_app.py``: an aiohttp handler answering 201 to a POST, the floor of a server,
    in ``processes`` processes on the one port as ``serve --processes`` runs."""

    def __init__(self, processes: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, str(BENCH_DIR / "bare_app.py"), "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--processes", str(processes)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_200(self.process, self.port, "/", timeout=30)
            wait_for_listeners(self.port, processes)
        except BaseException:
            stop(self.process)
            raise

    def stop(self) -> None:
        stop(self.process)


async def post(
    session: aiohttp.ClientSession,
    server: Server,
    path: str,
    body: bytes,
    content_type: str = "application/json",
) -> float:
    """POST ``body``; the seconds to a 201, which it insists on."""
    headers = {**server.headers, "Content-Type": content_type}
    started = time.perf_counter()
    async with session.post(server.url + path, data=body, headers=headers) as response:
        text = await response.text()
        if response.status != 201:
            raise RuntimeError(f"{path} answered {response.status}: {text[:300]}")
    return time.perf_counter() - started


async def post_concurrently(
    session: aiohttp.ClientSession, server: Server, senders: list[list[bytes]]
) -> float:
    """One sender per list, each posting its ``/batch`` bodies in turn; the wall-clock seconds."""

    async def send(bodies: list[bytes]) -> None:
        for body in bodies:
            await post(session, server, "/v2/import/batch", body)

    started = time.perf_counter()
    await asyncio.gather(*(send(bodies) for bodies in senders))
    return time.perf_counter() - started
