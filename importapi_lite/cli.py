"""The ``importapi-lite`` command: serve, tokens, integrations, and the store commands (tables,
rows, reset, admin-token; ``store_commands.py``). Thin: parse, call, print.

Every option of ``serve`` is also an ``IMPORTAPI_LITE_*`` variable; flags win (``Settings``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import store_commands
from .settings import REGIONS, Option, Settings
from .store import open_tokens
from .store.destination import DestinationUnavailable
from .store.tokens import DEFAULT_INTEGRATION, INTEGRATION_STATES, TokenError, TokenStore
from .version import __version__

DEV_CLIENT_ID = 7723  # the client id of Stitch's own examples
DEV_TOKEN_FILE = "dev-token"  # a file name, not a secret  # nosec B105


SETTINGS = {option.name: option for option in Settings.options()}
# The settings of the commands that read or write stored state (every command but serve has
# only these); serve takes them all.
STATE_SETTINGS = ("data_dir", "destination")


def _add_setting(parser: argparse.ArgumentParser, option: Option) -> None:
    """The setting's option, its help from its declaration, with its default and variable."""
    default = "none" if option.default is None else str(option.default)
    parser.add_argument(
        option.flag,
        dest=option.name,
        type=option.parse,
        choices=option.choices,
        default=None,  # unset: the environment's value, else the declared default
        help=f"{option.help} [default: {default}; env {option.variable}]",
    )


def _state_options(parser: argparse.ArgumentParser) -> None:
    for name in STATE_SETTINGS:
        _add_setting(parser, SETTINGS[name])


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="importapi-lite", description="A local stand-in for the Stitch Import API v2."
    )
    parser.add_argument("--version", action="version", version=f"importapi-lite {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="What to do."
    )

    serve = commands.add_parser("serve", help="Run the HTTP server.")
    for option in SETTINGS.values():
        _add_setting(serve, option)
    serve.add_argument(
        "--dev-token",
        action="store_true",
        help=f"Make a token for client {DEV_CLIENT_ID} if none is saved in DATA_DIR/"
        f"{DEV_TOKEN_FILE}, and print a curl command that uses it.",
    )

    tokens = commands.add_parser("tokens", help="Create, list and revoke push tokens.")
    token_commands = tokens.add_subparsers(
        dest="tokens_command", required=True, metavar="ACTION", help="What to do with tokens."
    )
    create = token_commands.add_parser(
        "create", help="Create a token; its secret is printed once, alone on the last line."
    )
    create.add_argument("--client-id", type=int, required=True, help="The Stitch client id.")
    create.add_argument(
        "--integration",
        default=DEFAULT_INTEGRATION,
        help="Integration name, which is the destination schema [default: import_api].",
    )
    create.add_argument(
        "--region", choices=REGIONS, default="north-america", help="The token's region."
    )
    _state_options(create)
    listing = token_commands.add_parser("list", help="List tokens (never their secrets).")
    _state_options(listing)
    revoke = token_commands.add_parser("revoke", help="Revoke a token by its secret or its id.")
    revoke.add_argument("token", metavar="TOKEN_OR_ID", help="The token's secret or its id.")
    _state_options(revoke)

    integrations = commands.add_parser(
        "integrations", help="Pause, resume or delete an integration (its tokens then get 401)."
    )
    integration_commands = integrations.add_subparsers(
        dest="integrations_command", required=True, metavar="ACTION", help="What to change."
    )
    set_state = integration_commands.add_parser("set-state", help="Set an integration's state.")
    set_state.add_argument("--client-id", type=int, required=True, help="The Stitch client id.")
    set_state.add_argument("--integration", default=DEFAULT_INTEGRATION, help="Integration name.")
    set_state.add_argument("state", choices=INTEGRATION_STATES, help="The new state.")
    _state_options(set_state)
    _store_commands(commands)
    return parser


def _store_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin_token = commands.add_parser(
        "admin-token",
        help="Print the admin API token, creating it on first use (SQLite: a 0600 file beside "
        "the data; PostgreSQL: only its digest is kept, so it is shown once, when made).",
    )
    admin_token.add_argument(
        "--rotate",
        action="store_true",
        help="Make a new admin token and print it; the old one stops working.",
    )
    _state_options(admin_token)

    tables = commands.add_parser(
        "tables", help="List the stored tables with their rows, rejected records and files."
    )
    tables.add_argument("--client-id", type=int, help="Only this client's tables.")
    tables.add_argument("--integration", help="Only this integration's tables.")
    _state_options(tables)

    rejected = commands.add_parser(
        "rejected",
        help="Why records were accepted but not loaded (_sdc_rejected): counts by table and "
        "reason, and with --records the newest records themselves.",
    )
    rejected.add_argument("table", metavar="TABLE", nargs="?", help="Only this table's.")
    rejected.add_argument("--client-id", type=int, help="Only this client's.")
    rejected.add_argument("--integration", help="Only this integration's.")
    rejected.add_argument(
        "--records",
        type=_count,
        default=0,
        metavar="N",
        help="Also print the N newest rejected records as JSON Lines [default: 0].",
    )
    _state_options(rejected)

    path = commands.add_parser(
        "path",
        help="Print the database file that holds a table, for sqlite3 (names are encoded: "
        "Users is %%55sers.sqlite3).",
    )
    path.add_argument("table", metavar="TABLE", help="The table (or subtable) name.")
    path.add_argument(
        "--client-id", type=int, help="The client; needed only if several have the table."
    )
    path.add_argument("--integration", default=DEFAULT_INTEGRATION, help="Integration name.")
    _state_options(path)

    rows = commands.add_parser("rows", help="Print a table's rows as JSON Lines or CSV.")
    rows.add_argument("table", metavar="TABLE", help="The table (or subtable) name.")
    rows.add_argument(
        "--format", choices=("jsonl", "csv"), default="jsonl", help="Output format [jsonl]."
    )
    rows.add_argument(
        "--client-id", type=int, help="The client; needed only if several have the table."
    )
    rows.add_argument("--integration", default=DEFAULT_INTEGRATION, help="Integration name.")
    _state_options(rows)

    reset = commands.add_parser(
        "reset",
        help="Delete stored data: everything, one client, or one table (tokens are kept). "
        "With a server running, use the admin API's DELETE routes instead.",
    )
    reset.add_argument("--client-id", type=int, help="Only this client's data.")
    reset.add_argument("--integration", default=DEFAULT_INTEGRATION, help="Integration of --table.")
    reset.add_argument("--table", help="Only this top-level table (and its subtables).")
    _state_options(reset)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        settings = Settings.from_env(
            environ, **{name: getattr(args, name, None) for name in SETTINGS}
        )
    except ValueError as exc:
        print(f"importapi-lite: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(settings, dev_token=args.dev_token)
    try:
        if args.command in ("admin-token", "tables", "rows", "rejected", "path", "reset"):
            return _store_command(args, settings)
        return _token_command(args, settings)
    except (TokenError, DestinationUnavailable) as exc:
        print(f"importapi-lite: {exc}", file=sys.stderr)
        return 1


def _token_command(args: argparse.Namespace, settings: Settings) -> int:
    tokens = open_tokens(settings)
    try:
        if args.command == "tokens":
            return _tokens(args, tokens)
        tokens.set_integration_state(args.client_id, args.integration, args.state)
        print(f"integration {args.integration!r} of client {args.client_id} is {args.state}")
        return 0
    finally:
        tokens.close()


def _store_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.command == "admin-token":
            return store_commands.admin_token(settings, rotate=args.rotate)
        if args.command == "tables":
            return store_commands.tables(settings, args.client_id, args.integration)
        if args.command == "rows":
            return store_commands.rows(
                settings, args.table, args.client_id, args.integration, args.format
            )
        if args.command == "rejected":
            return store_commands.rejected(
                settings, args.table, args.client_id, args.integration, args.records
            )
        if args.command == "path":
            return store_commands.path(settings, args.table, args.client_id, args.integration)
        return store_commands.reset_store(settings, args.client_id, args.integration, args.table)
    except store_commands.CommandError as exc:
        print(f"importapi-lite: {exc}", file=sys.stderr)
        return 1


def _tokens(args: argparse.Namespace, tokens: TokenStore) -> int:
    if args.tokens_command == "create":
        token, secret = tokens.create(args.client_id, args.integration, args.region)
        print(f"created token {token.id} for client {token.client_id}, {token.integration}")
        print("the secret below is shown only now; store it safely")
        print(secret)
    elif args.tokens_command == "list":
        print("id\tclient_id\tintegration\tregion\tcreated_at\trevoked_at")
        for t in tokens.tokens():
            fields = (t.id, t.client_id, t.integration, t.region, t.created_at, t.revoked_at)
            print("\t".join("-" if f is None else str(f) for f in fields))
    else:
        token = tokens.revoke(args.token)
        print(f"revoked token {token.id} at {token.revoked_at}")
    return 0


def ensure_dev_token(settings: Settings) -> Path:
    """The file holding a working dev token, made if missing (0600: it holds the secret)."""
    path = settings.data_dir / DEV_TOKEN_FILE
    tokens = open_tokens(settings)
    try:
        if path.exists():
            found = tokens.lookup(path.read_text().strip())
            if found is not None and found.is_active:
                return path
        _, secret = tokens.create(DEV_CLIENT_ID, DEFAULT_INTEGRATION, settings.region)
    finally:
        tokens.close()
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return path


def _serve(settings: Settings, *, dev_token: bool) -> int:
    from .observe import logs
    from .serve import TlsError, serve, tls_context

    logs.configure(settings.log_level, settings.log_format)
    token_file = None
    try:
        tls_context(settings)  # a certificate or key that cannot serve: one line, before anything
        open_tokens(settings).close()  # the destination reachable, before the banner says so
        if dev_token:
            token_file = ensure_dev_token(settings)
        return serve(settings, lambda served: _announce(served, token_file))
    except (TokenError, DestinationUnavailable, TlsError) as exc:
        if settings.log_format == "json":  # every line a JSON object, this one too
            logging.getLogger("importapi_lite.serve").error("%s", exc)
        else:
            print(f"importapi-lite: {exc}", file=sys.stderr)
        return 1


def _announce(settings: Settings, token_file: Path | None) -> None:
    """The banner on stdout; with ``--log-format json``, one JSON log line saying the same."""
    if settings.log_format != "json":
        print(_banner(settings, token_file), flush=True)
        return
    from .admin.routes import ADMIN_PREFIX

    url = f"{settings.scheme}://{settings.host}:{settings.port}"
    fields = {
        "version": __version__,
        "url": url,
        "admin_api": url + ADMIN_PREFIX + "/",
        "processes": settings.processes,
        "destination": settings.destination.shown(),
    }
    if not settings.destination.is_postgresql:
        fields["data_dir"] = str(settings.data_dir.resolve())
    if token_file is not None:
        fields["dev_token_file"] = str(token_file)
    message = f"importapi-lite {__version__} serving the Stitch Import API v2 at {url}"
    logging.getLogger("importapi_lite.serve").info(message, extra={"fields": fields})


def _banner(settings: Settings, token_file: Path | None) -> str:
    """What serve prints first: where it serves, where the data is, the admin API, and with
    ``--dev-token`` a curl that pushes one record."""
    from .admin.routes import ADMIN_PREFIX

    url = f"{settings.scheme}://{settings.host}:{settings.port}"
    destination = settings.destination
    if destination.is_postgresql:
        where = f"destination: {destination.shown()}"
        state = f"--destination '{destination.shown()}'"
    else:
        where = f"data directory: {settings.data_dir.resolve()}"
        state = f"--data-dir {settings.data_dir}"
    admin_hint = (
        f"importapi-lite admin-token {state}"
        if settings.admin_token is None
        else "the one given by --admin-token or IMPORTAPI_LITE_ADMIN_TOKEN"
    )
    processes = f" ({settings.processes} processes)" if settings.processes > 1 else ""
    lines = [
        f"importapi-lite {__version__} serving the Stitch Import API v2 at {url}{processes}",
        where,
        f"admin API: {url}{ADMIN_PREFIX}/ (token: {admin_hint})",
    ]
    cacert = ""
    if settings.tls_cert is not None:
        lines.append(
            f"TLS certificate: {settings.tls_cert} (clients need its issuer's certificate if "
            "the system does not trust it: curl --cacert, REQUESTS_CA_BUNDLE, SSL_CERT_FILE)"
        )
        # curl 7.68+ takes the served certificate itself as the anchor: a self-signed one, or
        # one from a private CA, works without the CA's file.
        cacert = f"--cacert {shlex.quote(str(settings.tls_cert))} "
    if token_file is not None:
        lines += [
            f"dev token (client {DEV_CLIENT_ID}) in {token_file}; push one record with:",
            f"  curl -sS {cacert}-X POST {url}/v2/import/push \\\n"
            f'    -H "Authorization: Bearer $(cat {token_file})" \\\n'
            '    -H "Content-Type: application/json" \\\n'
            f'    -d \'[{{"client_id": {DEV_CLIENT_ID}, "table_name": "customers", '
            '"sequence": 1, "action": "upsert", "key_names": ["id"], '
            '"data": {"id": 1, "name": "Finn"}}]\'',
        ]
    return "\n".join(lines)
