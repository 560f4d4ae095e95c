#!/usr/bin/env python3
"""The declared floors, tested: every direct dependency at its minimum, then the suite and lint.

pyproject.toml says ``name>=X`` for each direct dependency ([project] dependencies and the
``test`` extra). This turns each into ``name==X`` and installs them into a virtualenv of their own
(``.venv-floors``; ``/.venv-*/`` is gitignored), the project beside them with ``--no-deps``.
Transitive dependencies resolve freely, as they would for anyone installing us, so a floor is only
true if it works with today's releases of what it pulls in. Then, in that venv:

  1. the whole suite (``pytest``, as ``make test`` runs it);
  2. ``make lint`` (ruff, mypy, ...): a linter's floor must accept the code as it is;
  3. the tools of ``make audit``: bandit as ``make audit`` runs it, and pip-audit with its flags
     but ``--dry-run`` (the floors are old releases; their advisories are not the point here).

Stdlib only. Usage: ``python3 .ci/floors.py [--venv DIR] [--list] [-- PYTEST_ARGS...]``;
``make test-floors`` runs it. The venv is reused while pyproject.toml is unchanged (``make clean``
removes it). Exit 0 only if every step passed; a dependency without a ``>=`` floor is an error.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("test",)
# name, [extras], specifiers, ; marker (PEP 508 without URLs, which we do not use)
REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<extras>\[[^\]]*\])?"
    r"\s*(?P<specs>[^;]*?)\s*(?P<marker>;.*)?$"
)
STAMP = ".floors"  # in the venv: the digest of the pyproject.toml it was built from
MAKE_STAMP = ".installed"  # the Makefile's: present, so `make lint VENV=...` installs nothing


def floors(pyproject: Path) -> list[str]:
    """``name==X`` for each direct dependency's ``>=X``, in pyproject's order."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    declared = list(project.get("dependencies", []))
    for extra in EXTRAS:
        declared += project.get("optional-dependencies", {}).get(extra, [])
    pins, missing = [], []
    for requirement in declared:
        match = REQUIREMENT.match(requirement)
        if match is None:
            raise SystemExit(f"floors.py: cannot read the requirement {requirement!r}")
        lower = [s[2:].strip() for s in match["specs"].split(",") if s.strip().startswith(">=")]
        if len(lower) != 1:
            missing.append(requirement)
            continue
        pins.append(f"{match['name']}{match['extras'] or ''}=={lower[0]}{match['marker'] or ''}")
    if missing:
        raise SystemExit(f"floors.py: no single `>=` floor declared for: {', '.join(missing)}")
    return pins


def run(step: str, command: list[str], results: list[tuple[str, bool, float]], **kw: Any) -> bool:
    print(f"\n=== floors: {step}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    ok = subprocess.run(command, cwd=ROOT, **kw).returncode == 0
    results.append((step, ok, time.monotonic() - started))
    return ok


def build(venv: Path, pins: list[str]) -> None:
    """A fresh venv holding exactly the pins and the project, unless one built from this very
    pyproject.toml exists (its entry points and metadata matter too, not only the pins)."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = venv / STAMP
    if stamp.exists() and stamp.read_text() == digest and (venv / "bin" / "python").exists():
        print(f"floors: reusing {venv} (pyproject.toml unchanged)", flush=True)
        (venv / MAKE_STAMP).touch()
        return
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [*pip, "install", "--quiet", "--upgrade", "pip"],  # as the Makefile does for .venv
        [*pip, "install", "--quiet", *pins],
        [*pip, "install", "--quiet", "--no-deps", "-e", str(ROOT)],
        [*pip, "check"],  # the pins must agree with each other's requirements
    ]
    stamp.unlink(missing_ok=True)
    for command in steps:
        print(f"floors: {' '.join(command)}", flush=True)
        done = subprocess.run(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        sys.stderr.write(done.stderr)
        if done.returncode != 0:
            raise SystemExit("floors.py: installing the floors failed (see above)")
        # pip installs a yanked release when pinned, with a warning; no `>=` would choose it.
        if "yanked version" in done.stderr:
            raise SystemExit("floors.py: a floor is a yanked release: declare the next one")
    stamp.write_text(digest)
    (venv / MAKE_STAMP).touch()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-floors")
    parser.add_argument("--list", action="store_true", help="print the pins and exit")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed on to pytest")
    args = parser.parse_args()
    pins = floors(ROOT / "pyproject.toml")
    if args.list:
        print("\n".join(pins))
        return 0
    venv = args.venv.resolve()
    started = time.monotonic()
    build(venv, pins)
    print(f"floors: {' '.join(pins)}", flush=True)
    bin_ = venv / "bin"
    # Caches of their own: the floors' mypy and ruff must not churn those of .venv's.
    env = {**os.environ, "MYPY_CACHE_DIR": str(venv / "mypy_cache")}
    env["RUFF_CACHE_DIR"] = str(venv / "ruff_cache")
    results: list[tuple[str, bool, float]] = []
    run("suite", [str(bin_ / "pytest"), "-p", "no:cacheprovider", *args.pytest_args], results)
    run("make lint", ["make", "--no-print-directory", "lint", f"VENV={venv}"], results, env=env)
    run(
        "bandit",
        [str(bin_ / "bandit"), "-q", "-c", "pyproject.toml", "-r", "importapi_lite"],
        results,
    )
    audit = [str(bin_ / "pip-audit"), "--skip-editable", "--progress-spinner", "off", "--dry-run"]
    run("pip-audit --dry-run", audit, results, stdout=subprocess.DEVNULL)
    print("\n=== floors: summary")
    for step, ok, seconds in results:
        print(f"  {'ok  ' if ok else 'FAIL'} {step} ({seconds:.0f} s)")
    print(f"  total {time.monotonic() - started:.0f} s")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
