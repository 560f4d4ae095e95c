"""The README documents every command, option, setting and route, and its examples are right."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from importapi_lite.admin.routes import ADMIN_PREFIX, ROUTES
from importapi_lite.cli import build_parser
from importapi_lite.routes import ENDPOINTS
from importapi_lite.settings import ENV_PREFIX, Settings
from importapi_lite.storage.paths import decode_name, encode_name

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


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
def test_every_command_and_option_is_in_the_readme(
    command: str, parser: argparse.ArgumentParser
) -> None:
    assert f"importapi-lite {command}" in README
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and option not in ("--help", "--version"):
                assert option in README, f"{command} {option}"


@pytest.mark.parametrize("command, parser", ALL, ids=[c or "importapi-lite" for c, _ in ALL])
def test_every_command_and_option_has_help(command: str, parser: argparse.ArgumentParser) -> None:
    assert parser.description or parser.format_usage()
    for action in parser._actions:
        assert action.help, f"{command}: {action.dest} has no help"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Settings)])
def test_every_setting_is_documented_with_its_variable(field: str) -> None:
    assert ENV_PREFIX + field.upper() in README
    assert "--" + field.replace("_", "-") in README
    assert Settings.help(field)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.path)
def test_every_route_is_documented(endpoint: object) -> None:
    assert f"`{endpoint.method} {endpoint.path}`" in README  # type: ignore[attr-defined]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_admin_route_is_documented(route: object) -> None:
    assert f"`{route.method} {ADMIN_PREFIX}{route.path}`" in README  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["customers", "Users", "../etc"])
def test_the_readme_file_name_examples_are_what_the_code_does(name: str) -> None:
    assert f"`{encode_name(name)}.sqlite3`" in README
    assert decode_name(encode_name(name)) == name


def test_the_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    assert first_block.strip().splitlines()[0].startswith("make run")
    assert first_block.strip().splitlines()[1].startswith("make test")
