"""Instructions, not seconds: the server's CPU cost of a one-record push, and of validating and
planning a batch record, counted by valgrind's callgrind (repeatable to the instruction where
wall-clock ratios swing ±15% on a shared machine).

Each figure is the difference between two runs that differ only in how much work they do, so
start-up and import costs cancel out:

- ``push``: ``importapi-lite serve --durability fast --workers 0`` under callgrind, sent N one-
  record pushes one after another over one connection (each its own group commit), then
  SIGTERM; (instructions with N=1,200) − (N=200), over 1,000.
- ``plan``: ``decode_body``, ``parse_batch`` and ``plan_load`` of 2,000 flat records, run 1 and 3
  times in one process under callgrind; the difference over 4,000.

    python bench/instructions.py [--only push|plan] [--repo DIR] [--log-level info|warning]

``--repo`` measures another checkout (its package on ``sys.path`` first), so a change can be
compared with the commit before it on the same machine. ``PYTHONHASHSEED=0`` for both.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PUSHES = (200, 1_200)
PASSES = (1, 3)
PLAN_RECORDS = 2_000

PLAN_SCRIPT = """
import json, sys
from importapi_lite.ingest.codec import JSON, decode_body
from importapi_lite.ingest.validation import parse_batch
from importapi_lite.plan.plans import plan_load

passes, records = int(sys.argv[1]), int(sys.argv[2])
schema = {"type": "object", "properties": {
    "id": {"type": "integer"}, "name": {"type": ["null", "string"]},
    "amount": {"type": ["null", "number"]},
    "at": {"type": ["null", "string"], "format": "date-time"}, "ok": {"type": "boolean"}}}
messages = [{"action": "upsert", "sequence": i, "data": {
    "id": i, "name": f"name {i}", "amount": i * 1.5, "at": "2026-01-02T03:04:05.000000Z",
    "ok": i % 2 == 0}} for i in range(records)]
body = json.dumps({"table_name": "t", "schema": schema, "key_names": ["id"],
                   "messages": messages}).encode()
for _ in range(passes):
    batch = parse_batch(decode_body(JSON, body))
    plan_load(batch, {}, "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:00.000000Z")
"""


def callgrind(argv: list[str], env: dict[str, str], out: Path) -> Measured:
    """``argv`` under callgrind; the program's own output (a server's log) thrown away, so a
    pipe nobody reads can never stop it, callgrind's into a file of its own."""
    log = out.with_suffix(".log")
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", f"--log-file={log}"] + argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Measured(process, log)


@dataclass
class Measured:
    process: subprocess.Popen[bytes]
    log: Path  # callgrind's summary

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)


def total(measured: Measured) -> int:
    measured.process.wait(timeout=1800)
    text = measured.log.read_text(errors="replace")
    found = re.search(r"Collected : (\d+)", text)
    if found is None:
        raise RuntimeError("callgrind printed no total:\n" + text)
    return int(found.group(1))


def environment(repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPORTAPI_LITE_")}
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONPATH"] = str(repo)
    return env


def plan_instructions(repo: Path, scratch: Path) -> float:
    counts = []
    for passes in PASSES:
        argv = [sys.executable, "-c", PLAN_SCRIPT, str(passes), str(PLAN_RECORDS)]
        counts.append(total(callgrind(argv, environment(repo), scratch / f"plan.{passes}")))
    return (counts[1] - counts[0]) / ((PASSES[1] - PASSES[0]) * PLAN_RECORDS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def push_instructions(repo: Path, scratch: Path, log_level: str) -> float:
    counts = []
    for pushes in PUSHES:
        data_dir = scratch / f"data.{pushes}"
        token = make_token(repo, data_dir)
        port = free_port()
        argv = [sys.executable, "-m", "importapi_lite", "serve", "--port", str(port)]
        argv += ["--data-dir", str(data_dir), "--durability", "fast", "--workers", "0"]
        # By the environment, which a checkout from before --log-level ignores.
        env = environment(repo) | {"IMPORTAPI_LITE_LOG_LEVEL": log_level}
        server = callgrind(argv, env, scratch / f"push.{pushes}")
        try:
            send_pushes(port, token, pushes)
        finally:
            server.send_signal(signal.SIGTERM)
        counts.append(total(server))
    return (counts[1] - counts[0]) / (PUSHES[1] - PUSHES[0])


def make_token(repo: Path, data_dir: Path) -> str:
    argv = [sys.executable, "-m", "importapi_lite", "tokens", "create", "--client-id", "7723"]
    made = subprocess.run(
        [*argv, "--data-dir", str(data_dir)],
        env=environment(repo),
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip().splitlines()[-1]


def send_pushes(port: int, token: str, count: int) -> None:
    deadline = time.monotonic() + 300  # the server starts slowly under valgrind
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            connection.request("GET", "/v2/import/status")
            connection.getresponse().read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for sequence in range(count):
        record = {"client_id": 7723, "table_name": "t", "sequence": sequence, "action": "upsert"}
        record |= {"key_names": ["id"], "data": {"id": sequence % 100, "name": f"n{sequence}"}}
        connection.request("POST", "/v2/import/push", json.dumps([record]), headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 201, response.status
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("push", "plan"))
    parser.add_argument("--repo", type=Path, default=HERE.parent)
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("info", "warning"),
        help="the server's: info writes an access line a push (default: warning, none)",
    )
    args = parser.parse_args()
    repo = args.repo.resolve()
    with tempfile.TemporaryDirectory(prefix="instructions-") as scratch:
        if args.only in (None, "plan"):
            per_record = plan_instructions(repo, Path(scratch))
            print(f"validate + plan, per batch record: {per_record:,.0f} instructions")
        if args.only in (None, "push"):
            per_push = push_instructions(repo, Path(scratch), args.log_level)
            print(f"one-record push, server side:      {per_push:,.0f} instructions")


if __name__ == "__main__":
    main()
