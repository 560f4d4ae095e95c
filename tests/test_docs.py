"""README.md and docs/ document every command, option, setting and route, their examples are
right (the README's PostgreSQL commands are run), and their links lead to files and headings
that exist."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from importapi_lite.admin.routes import ADMIN_PREFIX, ROUTES
from importapi_lite.cli import build_parser
from importapi_lite.settings import ENV_PREFIX, Settings
from importapi_lite.store.sqlite.paths import decode_name, encode_name
from importapi_lite.web.routes import ENDPOINTS

from .helpers import free_port
from .pg_cluster import Cluster

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CLI = (ROOT / "docs" / "cli.md").read_text()
SETTINGS = CLI.split("\n## Settings\n", 1)[1]
ADMIN_API = (ROOT / "docs" / "admin-api.md").read_text()
LOADING_MODEL = (ROOT / "docs" / "loading-model.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, f"{prefix} {name}".strip())
    return found


ALL = commands(build_parser())


@pytest.mark.parametrize("command, parser", [c for c in ALL if c[0]], ids=[c for c, _ in ALL if c])
def test_every_command_and_option_is_in_docs_cli(
    command: str, parser: argparse.ArgumentParser
) -> None:
    assert f"importapi-lite {command}" in CLI
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and option not in ("--help", "--version"):
                assert option in CLI, f"{command} {option}"


@pytest.mark.parametrize("command, parser", ALL, ids=[c or "importapi-lite" for c, _ in ALL])
def test_every_command_and_option_has_help(command: str, parser: argparse.ArgumentParser) -> None:
    assert parser.description or parser.format_usage()
    for action in parser._actions:
        assert action.help, f"{command}: {action.dest} has no help"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Settings)])
def test_every_setting_is_in_the_settings_table_with_its_variable(field: str) -> None:
    flag = "--" + field.replace("_", "-")
    assert f"| `{flag}` | `{ENV_PREFIX + field.upper()}` |" in SETTINGS
    assert Settings.help(field)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.path)
def test_every_stitch_route_is_in_the_readme(endpoint: object) -> None:
    assert f"`{endpoint.method} {endpoint.path}`" in README  # type: ignore[attr-defined]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_admin_route_is_in_docs_admin_api(route: object) -> None:
    assert f"`{route.method} {ADMIN_PREFIX}{route.path}`" in ADMIN_API  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "page, name",
    [
        (LOADING_MODEL, "customers"),
        (LOADING_MODEL, "Users"),
        (LOADING_MODEL, "../etc"),
        (README, "Users"),
    ],
    ids=["loading-model-customers", "loading-model-Users", "loading-model-etc", "readme-Users"],
)
def test_the_file_name_examples_are_what_the_code_does(page: str, name: str) -> None:
    assert f"`{encode_name(name)}.sqlite3`" in page
    assert decode_name(encode_name(name)) == name


def test_the_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    assert first_block.strip().splitlines()[0].startswith("make run")
    assert first_block.strip().splitlines()[1].startswith("make test")


def without_code(markdown: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as '-', repeats '-1'."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", without_code(markdown), re.MULTILINE):
        words = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
        anchor = re.sub(r"[^\w\- ]", "", words).replace(" ", "-")
        candidate, n = anchor, 0
        while candidate in found:
            n += 1
            candidate = f"{anchor}-{n}"
        found.add(candidate)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    text = re.sub(r"`[^`\n]*`", "", without_code(page.read_text()))
    broken = []
    for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.is_file():
            broken.append(target)
        elif anchor and anchor not in anchors(linked.read_text()):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_every_docs_page_is_linked_from_the_readme(page: str) -> None:
    assert f"](docs/{page})" in README


@pytest.mark.serve
def test_the_readmes_postgresql_commands_work_as_written(
    tmp_path: Path, postgres_cluster: Cluster
) -> None:
    """The README's PostgreSQL block, run by bash as a user would (the test only picks the port,
    says where PostgreSQL is with libpq's ``PG*`` variables, and waits for the server before the
    ``curl``): ``psql`` prints what the README shows."""
    section = README.split("\n## PostgreSQL, several processes, more than one box\n", 1)[1]
    script, shown = re.findall(r"^```(?:sh)?\n(.*?)^```", section, re.DOTALL | re.MULTILINE)[:2]
    port = free_port()
    script = script.replace("8080", str(port))
    serve = next(line for line in script.splitlines() if line.endswith("&"))
    status = f"http://127.0.0.1:{port}/v2/import/status"
    ready = f"until curl -sf {status} >/dev/null; do sleep 0.1; done"
    script = script.replace(serve, f"{serve}\n{ready}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMPORTAPI_LITE_", "PG"))}
    path = [str(Path(sys.executable).parent), str(postgres_cluster.binaries), env["PATH"]]
    env |= {"PATH": os.pathsep.join(path), "PGHOST": "127.0.0.1", "PGUSER": "postgres"}
    env["PGPORT"] = str(postgres_cluster.port)

    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "trap 'kill $(jobs -p); wait' EXIT\n" + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert ran.returncode == 0, ran.stdout + ran.stderr
    printed = "\n".join(line.rstrip() for line in ran.stdout.splitlines())  # psql pads lines
    assert shown in printed, ran.stdout
