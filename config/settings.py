"""Settings read from `AVTOR_*` environment variables, checked once at start-up."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from datetime import timedelta
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AVTOR_"
DEFAULT_DATA_DIR = Path("data")

_DURATION = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)?\s*$", re.I
)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.I,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_HELP = "a duration such as 90s, 15m, 12h, 3d or 2w (or ISO 8601 like P3D, or plain seconds)"


# Every process in development mode says this first.
DEVELOPMENT_MODE_NOTICE = (
    "DEVELOPMENT MODE (AVTOR_DEVELOPMENT_MODE=1): answers signed with the development license server's "
    "key, whose private half ships with the manager, are trusted, and the license service may be reached "
    "over plain HTTP. Never run an installation that editors use in this mode."
)
MISSING_PUBLIC_KEY = (
    "AVTOR_LICENSE_SERVER_PUBLIC_KEY is not set, so no answer of the license service can be verified. "
    "Set it to the license service's public key the vendor gave you (base64 of 32 bytes); on a "
    "development machine with the development license server, set AVTOR_DEVELOPMENT_MODE=1 instead."
)
LOOPBACK_NAMES = frozenset({"localhost"})


class SettingsError(Exception):
    """The environment holds a value the manager cannot start with."""


_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")
_USER_PASSWORD = re.compile(r"(//[^/@:]*:)[^@]*@")


def hide_password(url: str) -> str:
    """`url` with its password (in the user part or the query) shown as ***, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL urllib can read (a stray bracket): hide everything between // and @
        return _USER_PASSWORD.sub(r"\1***@", _QUERY_PASSWORD.sub(r"\1***", url))
    shown = url
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        shown = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    return _QUERY_PASSWORD.sub(r"\1***", shown)


class SecretUrl(SecretStr):
    """A URL that may hold a password: shown with the password as ***; `get_secret_value()` gives it whole."""

    def __str__(self) -> str:
        return hide_password(self.get_secret_value())

    def __repr__(self) -> str:
        return f"SecretUrl({str(self)!r})"


@cache
def development_public_key() -> str:
    """The public key of the development license server's shipped key pair (anyone can sign with it)."""
    text = (files("licenseserver") / "data" / "development-key-pair.json").read_text(encoding="utf-8")
    return str(json.loads(text)["public_key"])


def is_loopback(host: str | None) -> bool:
    """Whether `host` names this machine: localhost, 127.0.0.0/8 or ::1."""
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_duration(value: Any) -> timedelta:
    """Read a positive duration from seconds, `3d`-style text or ISO 8601 `P3D`."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HELP}")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _duration_text_seconds(value)
    else:
        raise ValueError(f"expected {DURATION_HELP}")
    if not seconds > 0:
        raise ValueError(f"must be longer than zero: use {DURATION_HELP}")
    return timedelta(seconds=seconds)


def _duration_text_seconds(text: str) -> float:
    plain = _DURATION.match(text)
    if plain:
        unit = (plain.group(2) or "s")[0].lower()
        return float(plain.group(1)) * _UNIT_SECONDS[unit]
    iso = _ISO_DURATION.match(text.strip())
    if iso and any(iso.groupdict().values()):
        parts = {name: float(v) for name, v in iso.groupdict().items() if v}
        return timedelta(**parts).total_seconds()
    raise ValueError(f"{text!r} is not {DURATION_HELP}")


def _check_public_key(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError("expected the vendor's Ed25519 public key: 32 bytes, base64")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "is not base64: expected the vendor's Ed25519 public key, 32 bytes in base64"
        ) from None
    if len(raw) != 32:
        raise ValueError(
            f"decodes to {len(raw)} bytes: an Ed25519 public key is 32 bytes (44 base64 characters)"
        )
    return value.strip()


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _idle_time(value: Any) -> timedelta | None:
    """An idle time for seat reclamation: unset or empty for never, else at least a day."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    idle = parse_duration(value)
    if idle < timedelta(days=1):
        raise ValueError(
            "must be at least a day (1d): seats of editors not seen for that long are taken back"
        )
    return idle


class Settings(BaseSettings):
    """Everything the manager can be told through the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR, description="Folder for the embedded SQLite store and local state."
    )
    database_url: SecretUrl = Field(
        default=SecretUrl(""),
        description="SQLAlchemy URL of the store; default: a SQLite file in the data folder.",
    )
    store_lock_timeout: Duration = Field(
        default=timedelta(seconds=2),
        description="How long an enrolment consumer waits for the ledger's lock on PostgreSQL before "
        "giving up on the batch and trying it again.",
    )
    store_statement_timeout: Duration = Field(
        default=timedelta(seconds=5),
        description="How long one statement of an enrolment consumer may run on PostgreSQL before it is "
        "cancelled and the batch tried again.",
    )
    redis_url: SecretUrl = Field(
        default=SecretUrl("redis://127.0.0.1:6379/0"),
        description="Redis used as the queue and for decisions.",
    )
    # Declared before the license service's settings: their checks depend on it.
    development_mode: bool = Field(
        default=False,
        description="Development machines only: trust the development license server's shipped key when "
        "no public key is set, and allow the license service over plain HTTP off this machine.",
    )
    license_server_url: str = Field(
        default="http://127.0.0.1:8470", description="Base URL of the vendor's license service."
    )
    license_server_public_key: Annotated[str | None, BeforeValidator(_check_public_key)] = Field(
        default=None,
        description="The vendor's Ed25519 public key (base64); every answer must be signed with it. "
        "Required by the processes that call the license service, unless in development mode.",
    )
    revalidate_every: Duration = Field(
        default=timedelta(days=3), description="How often every license is re-validated."
    )
    grace_period: Duration = Field(
        default=timedelta(days=14),
        description="How long a license keeps its seats while the license service cannot confirm it.",
    )
    visibility_timeout: Duration = Field(
        default=timedelta(minutes=5),
        description="How long an admin task may stay unacknowledged before another worker gets it.",
    )
    result_expires: Duration = Field(
        default=timedelta(hours=1), description="How long a decision stays readable in Redis."
    )
    license_server_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="How long to wait for the license service's answer once connected (read timeout).",
    )
    license_server_connect_timeout: Duration = Field(
        default=timedelta(seconds=5), description="How long to wait for a connection to the license service."
    )
    license_server_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="How many times one validation is tried when the license service fails transiently.",
    )
    reclaim_idle_after: Annotated[timedelta | None, BeforeValidator(_idle_time)] = Field(
        default=None,
        description="Take back the seats of editors not seen for this long (e.g. 90d), except reserved "
        "users; unset: never.",
    )
    over_limit_policy: Literal["block-all", "block-newest"] = Field(
        default="block-all",
        description="Who is refused while more users hold seats than licensed: everyone (block-all), or "
        "only the newest seat holders beyond the licensed count, never reserved users (block-newest).",
    )
    revalidate_tick: Duration = Field(
        default=timedelta(minutes=1),
        description="How often the schedule looks for licenses whose re-validation is due.",
    )
    alert_tick: Duration = Field(
        default=timedelta(minutes=1),
        description="How often the schedule evaluates the alerts' conditions and sends what began or ended.",
    )
    notice_attempts: int = Field(
        default=10,
        ge=1,
        le=30,
        description="How many times a notice is tried on a channel (waiting 1 s, 2 s, 4 s ... between tries, "
        "at most 5 min) before it is given up.",
    )
    worker_pool: Literal["threads", "prefork", "solo"] = Field(
        default="threads",
        description="How a Celery worker runs admin tasks: in threads, in processes, or one at a time.",
    )
    worker_concurrency: int = Field(
        default=4, ge=1, le=512, description="How many admin tasks a Celery worker process runs at once."
    )
    enrolment_batch_size: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="How many waiting editors' starts an enrolment consumer takes and decides at once.",
    )
    enrolment_visibility_timeout: Duration = Field(
        default=timedelta(seconds=30),
        description="How long an enrolment consumer may hold a start before another consumer takes it over.",
    )
    enrolment_max_deliveries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="How many times a start that keeps failing is tried before it is set aside.",
    )

    console_session_timeout: Duration = Field(
        default=timedelta(minutes=30),
        description="How long a console session lasts without activity before its administrator must sign "
        "in again.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="How every process logs: text lines, or one JSON object per line (json) with a "
        "timestamp, level, the process's role and the event's fields.",
    )
    console_trusted_proxies: str = Field(
        default="",
        description="Addresses of the reverse proxies (comma-separated IPs or networks) whose "
        "X-Forwarded-For and X-Forwarded-Proto headers the console believes; empty: none.",
    )

    @field_validator("database_url")
    @classmethod
    def _database_url_scheme(cls, value: SecretUrl) -> SecretUrl:
        if value.get_secret_value() and not value.get_secret_value().startswith(("sqlite", "postgresql")):
            raise ValueError(
                "must start with sqlite:/// or postgresql+psycopg:// (example: postgresql+psycopg://avtor@db/avtor)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: SecretUrl) -> SecretUrl:
        if urlsplit(value.get_secret_value()).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must be a redis:// URL, for example redis://127.0.0.1:6379/0")
        return value

    @field_validator("license_server_url")
    @classmethod
    def _license_server_url_scheme(cls, value: str, info: ValidationInfo) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL, for example https://licensing.example.com")
        if (
            parts.scheme == "http"
            and not is_loopback(parts.hostname)
            and not info.data.get("development_mode")
        ):
            raise ValueError(
                "is plain HTTP to another machine, where answers and keys could be read or changed on the "
                "way: use the https:// URL of the license service (plain HTTP is allowed only on this "
                "machine, 127.0.0.1 or localhost, or with AVTOR_DEVELOPMENT_MODE=1)"
            )
        return value.rstrip("/")

    @field_validator("license_server_public_key")
    @classmethod
    def _not_the_development_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value == development_public_key() and not info.data.get("development_mode"):
            raise ValueError(
                "is the development license server's key, whose private half ships with the manager, so "
                "anyone can sign answers with it: set the public key the vendor gave you (on a development "
                "machine, set AVTOR_DEVELOPMENT_MODE=1 to trust the development key)"
            )
        return value

    @field_validator("console_trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        for part in filter(None, (item.strip() for item in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(
                    f"{part!r} is not an IP address or network: list the proxies' addresses, "
                    "comma-separated, for example 127.0.0.1,10.0.0.0/24"
                ) from None
        return ",".join(item.strip() for item in value.split(",") if item.strip())

    def trusted_public_key(self) -> str:
        """The key every answer of the license service must be signed with; SettingsError if there is none.

        In development mode without a key of its own, it is the development license server's key.
        """
        if self.license_server_public_key:
            return self.license_server_public_key
        if self.development_mode:
            return development_public_key()
        raise SettingsError(MISSING_PUBLIC_KEY)

    @property
    def store_url(self) -> SecretUrl:
        """The store's URL, defaulting to a SQLite file in the data folder."""
        if self.database_url.get_secret_value():
            return SecretUrl(_normalized_database_url(self.database_url.get_secret_value()))
        return SecretUrl(f"sqlite:///{(self.data_dir / 'avtor.sqlite3').resolve()}")


def _normalized_database_url(url: str) -> str:
    # psycopg (version 3) is the driver shipped with the manager.
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings (the environment first, then `env_file`); SettingsError names each wrong one."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as error:
        lines = [_describe(problem) for problem in error.errors()]
        raise SettingsError("The Avtor License Manager cannot start:\n" + "\n".join(lines)) from None


RUN_ENV_FILE = "run.env"


def running_system_env_file() -> Path | None:
    """The run.env of a `scripts/run` running in the data folder, when the environment names no Redis.

    The command line then works on that system (its store, Redis and license service)
    instead of silently on defaults that point elsewhere.
    """
    if ENV_PREFIX + "REDIS_URL" in os.environ:
        return None
    path = Path(os.environ.get(ENV_PREFIX + "DATA_DIR") or DEFAULT_DATA_DIR) / RUN_ENV_FILE
    return path if path.is_file() else None


def _describe(problem: Any) -> str:
    name = ENV_PREFIX + "_".join(str(part) for part in problem["loc"]).upper()
    message = str(problem["msg"]).removeprefix("Value error, ")
    given = problem.get("input")
    # A URL's password stays out of the message, whatever else is wrong with the URL.
    shown = "" if isinstance(given, dict) or given is None else f" (got {hide_password(str(given))[:80]!r})"
    return f"- {name}{shown}: {message}"


@lru_cache(maxsize=1)
def current_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
