"""Server settings, each declared once: its default, help and allowed values. The command line's
option (``--max-body-bytes``) and environment variable (``IMPORTAPI_LITE_MAX_BODY_BYTES``) are
derived from the field's name, and the help text from its declaration (``cli.py``).

Nothing reads ``os.environ`` at import time: ``Settings.from_env(environ)`` takes the mapping, so
tests pass their own. Command-line flags override the environment.
"""

from __future__ import annotations

import dataclasses
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "IMPORTAPI_LITE_"
REGIONS = ("north-america", "europe")
DURABILITY = ("fsync", "fast")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
MAX_BODY_BYTES_CEILING = 20_971_520  # Stitch's "20MB" (SPEC §8): the most a deployment may allow


class SettingError(ValueError):
    """A setting whose value is out of range; names the setting."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


class Secret:
    """A secret setting: its repr hides the value, so Settings can be printed and logged."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)  # equal secrets must hash alike; the value itself stays out of it


class DestinationUrl(str):
    """Where the data goes: ``sqlite`` (the files under ``data_dir``) or a PostgreSQL URL in
    libpq's form. Its repr hides a password, so Settings can be printed and logged."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(self.shown())

    def shown(self) -> str:
        """The URL with any password (``user:password@`` or ``?password=``) shown as ``***``."""
        return _QUERY_PASSWORD.sub(r"\1***", _PASSWORD.sub(r"\1***@", str(self)))

    @property
    def is_postgresql(self) -> bool:
        return self.startswith(("postgresql://", "postgres://"))


_PASSWORD = re.compile(r"^(\w+://[^:/@]*:)[^@]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*")


def _setting(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Settings:
    host: str = _setting("127.0.0.1", "Interface to bind; only loopback unless told otherwise.")
    port: int = _setting(8080, "TCP port to listen on (0 picks a free one).")
    data_dir: Path = _setting(Path("data"), "Directory for tokens and the per-table databases.")
    destination: DestinationUrl = _setting(
        DestinationUrl("sqlite"),
        "Where the data, tokens and admin token live: sqlite (the files under the data "
        "directory) or postgresql://user:password@host:port/dbname (libpq's URL; the password "
        "may also come from PGPASSWORD or ~/.pgpass).",
    )
    max_body_bytes: int = _setting(
        4_194_304, "Largest request body accepted, in bytes (4 MiB default, at most 20 MB)."
    )
    region: str = _setting(
        "north-america", "Region this server answers as; tokens of the other get 401.", REGIONS
    )
    max_open_tables: int = _setting(
        64, "Table databases kept open at once (each holds a connection and a thread)."
    )
    journal_size: int = _setting(
        1000, "Requests of the Stitch API kept in the admin API's journal (0 keeps none)."
    )
    admin_token: Secret | None = _setting(
        None,
        "Admin API token to accept instead of the one saved in DATA_DIR/admin-token. Prefer "
        "the environment variable: other users can see command lines.",
    )
    durability: str = _setting(
        "fsync",
        "fsync: a 2xx survives power loss (synchronous=FULL); fast: survives a process crash only.",
        DURABILITY,
    )
    max_concurrent_requests: int = _setting(
        256, "Data requests served at once; more are answered 503 at once rather than queued."
    )
    read_timeout: int = _setting(
        60, "Seconds a client may take to send its request body (a stalled upload gets 408)."
    )
    body_memory: int = _setting(
        16_777_216,
        "Bytes of request bodies being read or processed at once (16 MiB default); more "
        "requests wait their turn before their body is read, and a larger body runs alone.",
    )
    workers: int = _setting(
        -1,
        "Worker processes that decode, validate and stage big bodies off the event loop "
        "(-1: one per CPU core; 0: none, everything on the event loop).",
    )
    offload_bytes: int = _setting(
        262_144, "Bodies of at least this many bytes go to the worker processes (256 KiB)."
    )
    processes: int = _setting(
        1,
        "Server processes on the one port (SO_REUSEPORT), sharing the destination; each has "
        "its own journal and fault rules.",
    )
    cache_mib: int = _setting(
        64,
        "MiB of SQLite page cache for all open tables together (a soft limit), which one big "
        "table may use alone; 0: SQLite's default of 2 MiB per table.",
    )
    log_level: str = _setting(
        "warning",
        "Least severe log lines written to stderr: warning has only rejections, lost workers "
        "and errors; info adds one access line per request (make run's).",
        LOG_LEVELS,
    )
    log_format: str = _setting(
        "text", "text: one readable line each; json: one JSON object a line.", LOG_FORMATS
    )
    metrics_tables: int = _setting(
        100,
        "Tables with a label of their own in the metrics, per process; the rest are counted "
        'as table="_other", so the series stay bounded.',
    )
    tls_cert: Path | None = _setting(
        None,
        "PEM file of the certificate (and any intermediates after it) to serve HTTPS with; "
        "needs --tls-key. Its names must include the host clients connect to.",
    )
    tls_key: Path | None = _setting(
        None, "PEM file of the private key of --tls-cert (unencrypted); needs --tls-cert."
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        for name in ("tls_cert", "tls_key"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        object.__setattr__(self, "destination", DestinationUrl(self.destination))
        if self.destination != "sqlite" and not self.destination.is_postgresql:
            raise SettingError("destination", "must be sqlite or a postgresql:// URL")
        if isinstance(self.admin_token, str):
            object.__setattr__(self, "admin_token", Secret(self.admin_token))
        if not 1 <= self.max_body_bytes <= MAX_BODY_BYTES_CEILING:
            raise SettingError("max_body_bytes", f"must be between 1 and {MAX_BODY_BYTES_CEILING}")
        if self.region not in REGIONS:
            raise SettingError("region", f"must be one of {', '.join(REGIONS)}")
        if not 0 <= self.port <= 65535:
            raise SettingError("port", "must be between 0 and 65535")
        if self.max_open_tables < 1:
            raise SettingError("max_open_tables", "must be at least 1")
        if self.journal_size < 0:
            raise SettingError("journal_size", "must not be negative")
        if self.admin_token is not None and not self.admin_token.reveal().strip():
            raise SettingError("admin_token", "must not be blank")
        if self.durability not in DURABILITY:
            raise SettingError("durability", f"must be one of {', '.join(DURABILITY)}")
        if self.max_concurrent_requests < 1:
            raise SettingError("max_concurrent_requests", "must be at least 1")
        if self.read_timeout < 1:
            raise SettingError("read_timeout", "must be at least 1 second")
        if self.body_memory < 1:
            raise SettingError("body_memory", "must be at least 1")
        if self.workers < -1:
            raise SettingError("workers", "must be -1 (one per core), 0 or more")
        if self.offload_bytes < 0:
            raise SettingError("offload_bytes", "must not be negative")
        if self.cache_mib < 0:
            raise SettingError("cache_mib", "must not be negative")
        if self.processes < 1:
            raise SettingError("processes", "must be at least 1")
        if self.log_level not in LOG_LEVELS:
            raise SettingError("log_level", f"must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            raise SettingError("log_format", f"must be one of {', '.join(LOG_FORMATS)}")
        if self.metrics_tables < 0:
            raise SettingError("metrics_tables", "must not be negative")
        if (self.tls_cert is None) != (self.tls_key is None):  # HTTPS needs both, HTTP neither
            given, missing = (
                ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            )
            flag, variable = "--" + missing.replace("_", "-"), ENV_PREFIX + missing.upper()
            raise SettingError(
                given, f"is set but not {missing} ({flag} or {variable}): HTTPS needs both"
            )

    @property
    def scheme(self) -> str:
        """``https`` when serving with a certificate, else ``http``."""
        return "http" if self.tls_cert is None else "https"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings from ``IMPORTAPI_LITE_<NAME>`` variables; ``overrides`` (flags) win.

        A value that does not parse raises ``ValueError`` naming the variable.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name in environ:
                values[f.name] = _cast(name, environ[name], f.type)
        from_environment = set(values)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except SettingError as exc:
            if exc.field in from_environment - set(overrides.keys() & values.keys()):
                name = ENV_PREFIX + exc.field.upper()
                raise ValueError(f"{name}={environ[name]!r}: {exc}") from None
            raise

    @staticmethod
    def help(name: str) -> str:
        return str(_field(name).metadata["help"])

    @staticmethod
    def options() -> list[Option]:
        """Every setting as the command line offers it."""
        return [
            Option(
                name=f.name,
                flag="--" + f.name.replace("_", "-"),
                variable=ENV_PREFIX + f.name.upper(),
                parse=_PARSERS.get(f.type, str),
                default=f.default,
                help=f.metadata["help"],
                choices=f.metadata["choices"],
            )
            for f in dataclasses.fields(Settings)
        ]


@dataclass(frozen=True)
class Option:
    """A setting as a command-line option and an environment variable."""

    name: str  # the Settings field
    flag: str  # --max-body-bytes
    variable: str  # IMPORTAPI_LITE_MAX_BODY_BYTES
    parse: Any  # text -> value
    default: Any
    help: str
    choices: tuple[str, ...] | None


def _field(name: str) -> dataclasses.Field[Any]:
    return next(f for f in dataclasses.fields(Settings) if f.name == name)


# The fields' annotations, as text (``from __future__ import annotations``), to their parsers.
_PARSERS: dict[Any, Any] = {
    "int": int,
    "Path": Path,
    "Path | None": Path,
    "Secret | None": Secret,
    "DestinationUrl": DestinationUrl,
}


def _cast(name: str, raw: str, type_name: Any) -> Any:
    try:
        return _PARSERS.get(type_name, str)(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a valid {type_name}") from None
