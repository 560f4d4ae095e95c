"""``cli.py`` and ``settings.py``: the importapi-lite command against real token files.

Every call passes its own ``environ``, so nothing here depends on the real environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from importapi_lite.cli import main
from importapi_lite.settings import MAX_BODY_BYTES_CEILING, Settings
from importapi_lite.store.sqlite.tokens import TOKENS_FILE, SqliteTokenStore
from importapi_lite.store.tokens import hash_secret

SECRET = re.compile(r"[0-9a-f]{64}")


def run(capsys, *argv: str, environ: dict[str, str] | None = None):
    code = main(list(argv), environ={} if environ is None else environ)
    out, err = capsys.readouterr()
    return code, out, err


def create(capsys, data_dir: Path, client_id: int = 5, *extra: str) -> str:
    code, out, err = run(
        capsys,
        "tokens",
        "create",
        "--client-id",
        str(client_id),
        "--data-dir",
        str(data_dir),
        *extra,
    )
    assert (code, err) == (0, ""), err
    return out.splitlines()[-1]


def lookup(data_dir: Path, secret: str):
    store = SqliteTokenStore(data_dir)
    try:
        return store.lookup(secret)
    finally:
        store.close()


def listing(capsys, data_dir: Path) -> list[list[str]]:
    code, out, err = run(capsys, "tokens", "list", "--data-dir", str(data_dir))
    assert (code, err) == (0, "")
    return [line.split("\t") for line in out.splitlines()]


# --- tokens create -----------------------------------------------------------------------------


def test_tokens_create_prints_the_secret_alone_on_the_last_line(capsys, tmp_path):
    code, out, err = run(
        capsys, "tokens", "create", "--client-id", "5", "--data-dir", str(tmp_path)
    )

    assert (code, err) == (0, "")
    secret = out.splitlines()[-1]
    assert SECRET.fullmatch(secret)
    assert out.count(secret) == 1
    token = lookup(tmp_path, secret)
    assert (token.client_id, token.integration, token.region) == (5, "import_api", "north-america")
    assert token.id in out


def test_tokens_create_with_integration_and_region(capsys, tmp_path):
    secret = create(capsys, tmp_path, 7, "--integration", "sales", "--region", "europe")

    token = lookup(tmp_path, secret)
    assert (token.client_id, token.integration, token.region) == (7, "sales", "europe")


def test_tokens_create_a_third_active_token_fails_without_a_secret(capsys, tmp_path):
    create(capsys, tmp_path)
    create(capsys, tmp_path)

    code, out, err = run(
        capsys, "tokens", "create", "--client-id", "5", "--data-dir", str(tmp_path)
    )

    assert code == 1
    assert not SECRET.search(out)
    assert err.startswith("importapi-lite: ") and "revoke" in err
    assert len(listing(capsys, tmp_path)) == 1 + 2


def test_tokens_create_needs_a_client_id(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(["tokens", "create", "--data-dir", str(tmp_path)], environ={})

    assert exited.value.code == 2
    assert "--client-id" in capsys.readouterr().err
    assert not (tmp_path / TOKENS_FILE).exists()


def test_tokens_create_refuses_a_non_integer_client_id(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["tokens", "create", "--client-id", "abc", "--data-dir", str(tmp_path)], environ={})


# --- tokens list -------------------------------------------------------------------------------


def test_tokens_list_shows_id_client_integration_created_and_revoked(capsys, tmp_path):
    secret = create(capsys, tmp_path, 5)
    token = lookup(tmp_path, secret)

    header, row = listing(capsys, tmp_path)

    fields = dict(zip(header, row, strict=True))
    assert {"id", "client_id", "integration", "created_at", "revoked_at"} <= set(header)
    assert fields["id"] == token.id
    assert fields["client_id"] == "5"
    assert fields["integration"] == "import_api"
    assert fields["created_at"] == token.created_at
    assert fields["revoked_at"] == "-"


def test_tokens_list_never_shows_a_secret_or_its_hash(capsys, tmp_path):
    secrets = [create(capsys, tmp_path, client) for client in (5, 6)]
    run(capsys, "tokens", "revoke", secrets[0], "--data-dir", str(tmp_path))

    code, out, _ = run(capsys, "tokens", "list", "--data-dir", str(tmp_path))

    assert code == 0
    for secret in secrets:
        assert secret not in out and hash_secret(secret) not in out
    assert not SECRET.search(out)


def test_tokens_list_shows_when_a_token_was_revoked(capsys, tmp_path):
    secret = create(capsys, tmp_path)
    run(capsys, "tokens", "revoke", secret, "--data-dir", str(tmp_path))

    header, row = listing(capsys, tmp_path)

    assert dict(zip(header, row, strict=True))["revoked_at"] == lookup(tmp_path, secret).revoked_at


def test_tokens_list_of_an_empty_data_dir_is_only_the_header(capsys, tmp_path):
    assert len(listing(capsys, tmp_path / "fresh")) == 1


# --- tokens revoke -----------------------------------------------------------------------------


def test_tokens_revoke_by_secret(capsys, tmp_path):
    secret = create(capsys, tmp_path)

    code, out, err = run(capsys, "tokens", "revoke", secret, "--data-dir", str(tmp_path))

    assert (code, err) == (0, "")
    token = lookup(tmp_path, secret)
    assert not token.is_active
    assert token.id in out and secret not in out


def test_tokens_revoke_by_id(capsys, tmp_path):
    secret = create(capsys, tmp_path)
    token_id = lookup(tmp_path, secret).id

    code, _, _ = run(capsys, "tokens", "revoke", token_id, "--data-dir", str(tmp_path))

    assert code == 0
    assert not lookup(tmp_path, secret).is_active


def test_tokens_revoke_of_an_unknown_token_fails(capsys, tmp_path):
    secret = create(capsys, tmp_path)

    code, out, err = run(capsys, "tokens", "revoke", "tok_nope", "--data-dir", str(tmp_path))

    assert code == 1 and out == ""
    assert err.startswith("importapi-lite: ")
    assert lookup(tmp_path, secret).is_active


# --- integrations set-state ----------------------------------------------------------------------


@pytest.mark.parametrize("state", ["paused", "deleted"])
def test_integrations_set_state_is_seen_by_token_lookup(capsys, tmp_path, state):
    secret = create(capsys, tmp_path, 5)

    code, out, err = run(
        capsys, "integrations", "set-state", "--client-id", "5", state, "--data-dir", str(tmp_path)
    )

    assert (code, err) == (0, "")
    assert state in out
    assert lookup(tmp_path, secret).integration_state == state


def test_integrations_set_state_active_resumes_a_paused_integration(capsys, tmp_path):
    secret = create(capsys, tmp_path, 5, "--integration", "sales")
    base = ["integrations", "set-state", "--client-id", "5", "--integration", "sales"]
    run(capsys, *base, "paused", "--data-dir", str(tmp_path))

    code, _, _ = run(capsys, *base, "active", "--data-dir", str(tmp_path))

    assert code == 0
    assert lookup(tmp_path, secret).integration_state == "active"


def test_integrations_set_state_of_an_unknown_integration_fails(capsys, tmp_path):
    create(capsys, tmp_path, 5)

    code, _, err = run(
        capsys,
        "integrations",
        "set-state",
        "--client-id",
        "6",
        "paused",
        "--data-dir",
        str(tmp_path),
    )

    assert code == 1 and err.startswith("importapi-lite: ")


def test_integrations_set_state_refuses_an_unknown_state(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "integrations",
                "set-state",
                "--client-id",
                "5",
                "frozen",
                "--data-dir",
                str(tmp_path),
            ],
            environ={},
        )

    assert exited.value.code == 2
    assert "frozen" in capsys.readouterr().err


# --- data directory from flag and environment ----------------------------------------------------


def test_data_dir_comes_from_the_environment_without_a_flag(capsys, tmp_path):
    env = {"IMPORTAPI_LITE_DATA_DIR": str(tmp_path / "from-env")}

    code, out, _ = run(capsys, "tokens", "create", "--client-id", "5", environ=env)

    assert code == 0
    assert lookup(tmp_path / "from-env", out.splitlines()[-1]) is not None


def test_data_dir_flag_wins_over_the_environment(capsys, tmp_path):
    env = {"IMPORTAPI_LITE_DATA_DIR": str(tmp_path / "from-env")}

    code, _, _ = run(
        capsys,
        "tokens",
        "create",
        "--client-id",
        "5",
        "--data-dir",
        str(tmp_path / "flag"),
        environ=env,
    )

    assert code == 0
    assert (tmp_path / "flag" / TOKENS_FILE).is_file()
    assert not (tmp_path / "from-env").exists()


# --- Settings.from_env ---------------------------------------------------------------------------

ENV = {
    "IMPORTAPI_LITE_HOST": "0.0.0.0",
    "IMPORTAPI_LITE_PORT": "9000",
    "IMPORTAPI_LITE_DATA_DIR": "/srv/importapi",
    "IMPORTAPI_LITE_MAX_BODY_BYTES": "20971520",
    "IMPORTAPI_LITE_REGION": "europe",
    "IMPORTAPI_LITE_MAX_OPEN_TABLES": "3",
}


def test_settings_from_env_reads_every_variable():
    settings = Settings.from_env(ENV)

    assert settings == Settings(
        host="0.0.0.0",
        port=9000,
        data_dir=Path("/srv/importapi"),
        max_body_bytes=20_971_520,
        region="europe",
        max_open_tables=3,
    )
    assert isinstance(settings.data_dir, Path) and isinstance(settings.port, int)


def test_settings_from_empty_env_are_the_defaults():
    assert Settings.from_env({}) == Settings()
    assert Settings() == Settings(
        host="127.0.0.1", port=8080, data_dir=Path("data"), max_body_bytes=4_194_304
    )


def test_settings_from_env_ignores_other_variables():
    env = {"PORT": "1", "IMPORTAPI_LITE_UNKNOWN": "x", "importapi_lite_port": "2"}

    assert Settings.from_env(env) == Settings()


def test_settings_flags_win_over_env():
    settings = Settings.from_env(ENV, port=1234, data_dir=Path("/flag"), region="north-america")

    assert (settings.port, settings.data_dir, settings.region) == (
        1234,
        Path("/flag"),
        "north-america",
    )
    assert settings.host == "0.0.0.0"


def test_settings_flags_left_unset_do_not_hide_env():
    settings = Settings.from_env(ENV, port=None, host=None)

    assert (settings.port, settings.host) == (9000, "0.0.0.0")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IMPORTAPI_LITE_PORT", "abc"),
        ("IMPORTAPI_LITE_PORT", "80.5"),
        ("IMPORTAPI_LITE_PORT", ""),
        ("IMPORTAPI_LITE_MAX_BODY_BYTES", "4MB"),
        ("IMPORTAPI_LITE_MAX_OPEN_TABLES", "many"),
    ],
)
def test_settings_value_that_does_not_parse_names_the_variable(name, value):
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IMPORTAPI_LITE_PORT", "70000"),
        ("IMPORTAPI_LITE_REGION", "asia"),
        ("IMPORTAPI_LITE_MAX_BODY_BYTES", str(MAX_BODY_BYTES_CEILING + 1)),
    ],
)
def test_settings_value_out_of_range_names_the_variable(name, value):
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 65536},
        {"region": "asia"},
        {"max_body_bytes": 0},
        {"max_body_bytes": MAX_BODY_BYTES_CEILING + 1},
        {"max_open_tables": 0},
    ],
)
def test_settings_refuse_out_of_range_values(kwargs):
    with pytest.raises(ValueError):
        Settings(**kwargs)


def test_settings_accept_the_20mb_ceiling_and_port_zero():
    settings = Settings(max_body_bytes=MAX_BODY_BYTES_CEILING, port=0)

    assert (settings.max_body_bytes, settings.port) == (20_971_520, 0)


def test_every_setting_has_help_text():
    for name in ("host", "port", "data_dir", "max_body_bytes", "region", "max_open_tables"):
        assert Settings.help(name).strip()


# --- the command as a process ----------------------------------------------------------------


def python_m(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMPORTAPI_LITE_")}
    return subprocess.run(
        [sys.executable, "-m", "importapi_lite", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean | (env or {}),
        cwd=cwd,
    )


def test_python_m_importapi_lite_help_lists_the_commands():
    done = python_m("--help")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: importapi-lite")
    for command in ("serve", "tokens", "integrations"):
        assert command in done.stdout


def test_python_m_importapi_lite_serve_with_a_bad_variable_exits_2_naming_it(tmp_path):
    done = python_m("serve", env={"IMPORTAPI_LITE_PORT": "abc"}, cwd=tmp_path)

    assert done.returncode == 2
    assert "IMPORTAPI_LITE_PORT" in done.stderr
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_every_setting_is_a_serve_option_and_a_variable_named_after_it() -> None:
    """Declared once in Settings: the option, the variable and the help all come from there."""
    from importapi_lite.cli import build_parser

    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    flags = {a.dest: a for a in serve._actions if a.option_strings}
    for option in Settings.options():
        action = flags[option.name]
        assert action.option_strings == ["--" + option.name.replace("_", "-")]
        assert option.variable == "IMPORTAPI_LITE_" + option.name.upper()
        assert action.help.startswith(Settings.help(option.name))
        assert option.variable in action.help


def test_a_flag_parses_as_its_setting_and_wins_over_the_variable(capsys, tmp_path) -> None:
    from importapi_lite.cli import build_parser

    args = build_parser().parse_args(["serve", "--port", "9", "--data-dir", str(tmp_path)])
    settings = Settings.from_env(
        {"IMPORTAPI_LITE_PORT": "7", "IMPORTAPI_LITE_JOURNAL_SIZE": "5"},
        port=args.port,
        data_dir=args.data_dir,
    )

    assert (settings.port, settings.journal_size, settings.data_dir) == (9, 5, tmp_path)
