#!/usr/bin/env python3
"""The wheel in dist/ works as a user installs it: not editable, in a fresh virtualenv, run from a
folder outside the repository, so nothing of the source tree can be imported instead.

  1. dist/ holds one wheel and one sdist, and each holds every file of the package's source tree
     (the dashboard's files, py.typed: whatever is read with importlib.resources), the wheel its
     console script and its pytest11 entry point;
  2. a fresh venv, `pip install dist/<wheel>`, `pip check`; the package imported there is the
     installed one, and `importapi-lite --version` is the wheel's;
  3. `importapi-lite tokens create`, then `importapi-lite serve` on a free port (its worker
     processes too: a body big enough for them is pushed), a push read back with
     `importapi-lite rows`, the dashboard's page, script and style (compared byte for byte with
     the installed files) and the admin API's OpenAPI document fetched over HTTP; SIGTERM ends it
     with status 0.

Stdlib only. Usage: ``python3 .ci/check-wheel.py [--keep]`` after ``make dist`` (``make check-dist``
does both; .ci/run runs it after ``make test``). Exit 0 only if every step passed. About 30 s
(the venv's installs come from pip's cache after the first run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
PACKAGE = "importapi_lite"
CLIENT_ID = 7723
TABLE = "wheel_check"
# What the dashboard serves (importapi_lite/admin/dashboard.py) and the file each one is.
DASHBOARD = {
    "/_importapi/": "index.html",
    "/_importapi/dashboard.js": "dashboard.js",
    "/_importapi/dashboard.css": "dashboard.css",
}
OPENAPI = "/_importapi/v1/openapi.json"


class Failed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def step(title: str) -> None:
    print(f"check-wheel: {title}", flush=True)


def run(
    command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    if done.returncode != 0:
        raise Failed(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


# --- 1. what dist/ holds -------------------------------------------------------------------------


def package_files() -> set[str]:
    """The package's files in the source tree, as paths inside a wheel."""
    return {
        str(path.relative_to(ROOT))
        for path in (ROOT / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def check_contents() -> tuple[Path, str]:
    wheels = sorted(DIST.glob("importapi_lite-*.whl"))
    sdists = sorted(DIST.glob("importapi_lite-*.tar.gz"))
    check(
        len(wheels) == 1 and len(sdists) == 1,
        f"want one wheel and one sdist in {DIST}: {[p.name for p in wheels + sdists]} (make dist)",
    )
    wheel, sdist = wheels[0], sdists[0]
    version = wheel.name.split("-")[1]
    wanted = package_files()
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(f"{PACKAGE}-{version}.dist-info/entry_points.txt").decode()
    missing = sorted(wanted - names)
    check(
        not missing, f"{wheel.name} lacks {missing} (pyproject.toml [tool.setuptools.package-data])"
    )
    check("importapi-lite = importapi_lite.cli:main" in entry_points, "no console script")
    check("importapi_lite = importapi_lite.pytest_plugin" in entry_points, "no pytest11 plugin")
    with tarfile.open(sdist) as archive:
        top = sdist.name[: -len(".tar.gz")]
        in_sdist = {name.removeprefix(top + "/") for name in archive.getnames()}
    missing = sorted((wanted | {"pyproject.toml", "README.md"}) - in_sdist)
    check(not missing, f"{sdist.name} lacks {missing}")
    print(f"  {wheel.name} and {sdist.name}: all {len(wanted)} package files")
    return wheel, version


# --- 2. the installed package --------------------------------------------------------------------


def user_env(venv: Path) -> dict[str, str]:
    """A user's shell with the venv activated: none of this run's Python or server settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMPORTAPI_LITE_", "PYTHON")) and k != "VIRTUAL_ENV"
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def install(wheel: Path, venv: Path, work: Path, version: str) -> tuple[dict[str, str], Path]:
    """The user's environment with the venv on PATH, and where the package was installed."""
    run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "install", "--quiet", str(wheel)], cwd=work)
    run([*pip, "check"], cwd=work)
    env = user_env(venv)
    where = run(
        [str(venv / "bin" / "python"), "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
        cwd=work,
        env=env,
    ).stdout.strip()
    site = Path(where).resolve().parent
    check(site.is_relative_to(venv.resolve()), f"{PACKAGE} imported from {where}, not the venv")
    check(not site.is_relative_to(ROOT), f"{PACKAGE} imported from the source tree: {where}")
    shown = run(["importapi-lite", "--version"], cwd=work, env=env).stdout.strip()
    check(shown == f"importapi-lite {version}", f"--version says {shown!r}, the wheel {version}")
    print(f"  installed in {site}")
    return env, site


# --- 3. serving from it --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, *, body: object = None, token: str | None = None) -> tuple[int, str, bytes]:
    """Status, content type and body of a GET (or a JSON POST with ``body``)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def records(first: int, count: int, text: str) -> list[dict[str, object]]:
    return [
        {
            "client_id": CLIENT_ID,
            "table_name": TABLE,
            "sequence": 1,
            "action": "upsert",
            "key_names": ["id"],
            "data": {"id": i, "name": text},
        }
        for i in range(first, first + count)
    ]


def wait_until_serving(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if http(url + "/v2/import/status")[0] == 200:
                return
        except OSError:
            pass
        check(server.poll() is None, "the server exited:\n" + log.read_text())
        check(time.monotonic() < deadline, "the server did not start:\n" + log.read_text())
        time.sleep(0.1)


def serve_and_use(work: Path, env: dict[str, str], installed: Path) -> None:
    data = ["--data-dir", str(work / "data")]
    created = run(
        ["importapi-lite", "tokens", "create", "--client-id", str(CLIENT_ID), *data],
        cwd=work,
        env=env,
    )
    token = created.stdout.strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["importapi-lite", "serve", "--port", str(port), *data],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_serving(url, server, log)
        print(f"  serving at {url}")
        accepted = json.dumps({"status": "OK", "message": "Batch Accepted!"}, separators=(",", ":"))
        status, _, body = http(url + "/v2/import/push", body=records(0, 1, "Finn"), token=token)
        check((status, body.decode()) == (201, accepted), f"push: {status} {body[:300]!r}")
        # Past --offload-bytes (256 KiB): decoded and planned in the installed worker processes.
        big = records(1, 2000, "x" * 150)
        status, _, body = http(url + "/v2/import/push", body=big, token=token)
        check((status, body.decode()) == (201, accepted), f"big push: {status} {body[:300]!r}")
        rows = run(["importapi-lite", "rows", TABLE, *data], cwd=work, env=env).stdout
        loaded = [json.loads(line) for line in rows.splitlines() if line]
        check(len(loaded) == 2001, f"importapi-lite rows: {len(loaded)} rows, not 2001")
        check({"id": 0, "name": "Finn"}.items() <= loaded[0].items(), f"row 0: {loaded[0]}")
        print("  pushed 1 record and 2,000 more (the workers'), read back with `rows`")
        static = installed / "admin" / "static"
        for path, name in DASHBOARD.items():
            status, content_type, body = http(url + path)
            check(status == 200, f"GET {path}: {status}")
            check(body == (static / name).read_bytes(), f"GET {path}: not the installed {name}")
            check(
                body == (ROOT / PACKAGE / "admin" / "static" / name).read_bytes(),
                f"GET {path}: the installed {name} is not the source tree's",
            )
            print(f"  GET {path}: {status} {content_type}, {len(body)} bytes: the package's {name}")
        status, content_type, body = http(url + OPENAPI)
        check(status == 200 and content_type.startswith("application/json"), f"{OPENAPI}: {status}")
        document = json.loads(body)
        check(
            str(document.get("openapi", "")).startswith("3.") and document.get("paths"),
            f"{OPENAPI}: not an OpenAPI 3 document with paths",
        )
        print(
            f"  GET {OPENAPI}: {status}, OpenAPI {document['openapi']}, "
            f"{len(document['paths'])} paths"
        )
        server.send_signal(signal.SIGTERM)
        check(server.wait(timeout=30) == 0, "SIGTERM: not exit status 0:\n" + log.read_text())
        check(
            "Traceback" not in log.read_text(), "the server logged a traceback:\n" + log.read_text()
        )
        print("  SIGTERM: exit status 0")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the venv and the data")
    args = parser.parse_args()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="importapi-lite-check-wheel-"))
    try:
        step("1. the contents of dist/")
        wheel, version = check_contents()
        step("2. a fresh virtualenv with the wheel installed (not editable)")
        env, installed = install(wheel, work / "venv", work, version)
        step(f"3. importapi-lite serve from it, in {work}")
        serve_and_use(work, env, installed)
    except (Failed, subprocess.TimeoutExpired, OSError) as exc:
        print(f"check-wheel: FAIL: {exc}", file=sys.stderr)
        if args.keep:
            print(f"check-wheel: left in {work}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"check-wheel: ok ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
