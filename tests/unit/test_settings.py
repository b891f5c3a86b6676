from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import (
    SettingsError,
    development_public_key,
    hide_password,
    load_settings,
    parse_duration,
)
from host_client import redact_url
from licenseserver.signing import development_signer


def test_defaults_are_sane(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AVTOR_DATABASE_URL", "AVTOR_REVALIDATE_EVERY", "AVTOR_GRACE_PERIOD", "AVTOR_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.revalidate_every == timedelta(days=3)
    assert settings.grace_period == timedelta(days=14)
    assert settings.store_url.get_secret_value() == f"sqlite:///{Path('data/avtor.sqlite3').resolve()}"


def test_license_service_and_schedule_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AVTOR_LICENSE_SERVER_TIMEOUT",
        "AVTOR_LICENSE_SERVER_CONNECT_TIMEOUT",
        "AVTOR_LICENSE_SERVER_ATTEMPTS",
        "AVTOR_REVALIDATE_TICK",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.license_server_timeout == timedelta(seconds=10)
    assert settings.license_server_connect_timeout == timedelta(seconds=5)
    assert settings.license_server_attempts == 3
    assert settings.revalidate_tick == timedelta(minutes=1)


def test_license_service_and_schedule_come_from_avtor_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVTOR_LICENSE_SERVER_TIMEOUT", "2.5")
    monkeypatch.setenv("AVTOR_LICENSE_SERVER_CONNECT_TIMEOUT", "1s")
    monkeypatch.setenv("AVTOR_LICENSE_SERVER_ATTEMPTS", "5")
    monkeypatch.setenv("AVTOR_REVALIDATE_TICK", "15s")
    settings = load_settings()
    assert settings.license_server_timeout == timedelta(seconds=2.5)
    assert settings.license_server_connect_timeout == timedelta(seconds=1)
    assert settings.license_server_attempts == 5
    assert settings.revalidate_tick == timedelta(seconds=15)


def test_settings_come_from_avtor_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVTOR_REVALIDATE_EVERY", "12h")
    monkeypatch.setenv("AVTOR_GRACE_PERIOD", "P7D")
    monkeypatch.setenv("AVTOR_DATABASE_URL", "postgresql://avtor@db/avtor")
    settings = load_settings()
    assert settings.revalidate_every == timedelta(hours=12)
    assert settings.grace_period == timedelta(days=7)
    assert settings.store_url.get_secret_value() == "postgresql+psycopg://avtor@db/avtor"


def test_the_store_timeouts_default_to_two_and_five_seconds_and_come_from_avtor_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AVTOR_STORE_LOCK_TIMEOUT", "AVTOR_STORE_STATEMENT_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.store_lock_timeout, settings.store_statement_timeout) == (
        timedelta(seconds=2),
        timedelta(seconds=5),
    )
    monkeypatch.setenv("AVTOR_STORE_LOCK_TIMEOUT", "0.5")
    monkeypatch.setenv("AVTOR_STORE_STATEMENT_TIMEOUT", "1m")
    settings = load_settings()
    assert (settings.store_lock_timeout, settings.store_statement_timeout) == (
        timedelta(seconds=0.5),
        timedelta(minutes=1),
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("AVTOR_REVALIDATE_EVERY", "soon", "AVTOR_REVALIDATE_EVERY (got 'soon'): 'soon' is not a duration"),
        ("AVTOR_GRACE_PERIOD", "0", "AVTOR_GRACE_PERIOD (got '0'): must be longer than zero"),
        ("AVTOR_REDIS_URL", "http://x", "AVTOR_REDIS_URL (got 'http://x'): must be a redis:// URL"),
        ("AVTOR_DATABASE_URL", "mysql://x", "AVTOR_DATABASE_URL (got 'mysql://x'): must start with sqlite"),
        (
            "AVTOR_LICENSE_SERVER_URL",
            "licensing",
            "AVTOR_LICENSE_SERVER_URL (got 'licensing'): must be an http",
        ),
        (
            "AVTOR_LICENSE_SERVER_PUBLIC_KEY",
            "abc",
            "AVTOR_LICENSE_SERVER_PUBLIC_KEY (got 'abc'): is not base64",
        ),
        ("AVTOR_LICENSE_SERVER_PUBLIC_KEY", "YWJj", "decodes to 3 bytes"),
        (
            "AVTOR_LICENSE_SERVER_TIMEOUT",
            "0s",
            "AVTOR_LICENSE_SERVER_TIMEOUT (got '0s'): must be longer than zero",
        ),
        ("AVTOR_LICENSE_SERVER_CONNECT_TIMEOUT", "fast", "AVTOR_LICENSE_SERVER_CONNECT_TIMEOUT (got 'fast')"),
        (
            "AVTOR_LICENSE_SERVER_ATTEMPTS",
            "0",
            "AVTOR_LICENSE_SERVER_ATTEMPTS (got '0'): Input should be greater",
        ),
        ("AVTOR_LICENSE_SERVER_ATTEMPTS", "many", "AVTOR_LICENSE_SERVER_ATTEMPTS (got 'many')"),
        ("AVTOR_REVALIDATE_TICK", "never", "AVTOR_REVALIDATE_TICK (got 'never'): 'never' is not a duration"),
    ],
)
def test_a_wrong_value_names_the_variable_and_what_it_accepts(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert says in str(error.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("12 hours", 43200),
        ("3d", 259200),
        ("2w", 1209600),
        ("PT1H30M", 5400),
    ],
)
def test_durations(text: str, expected: int) -> None:
    assert parse_duration(text) == timedelta(seconds=expected)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@redis.example:6379/2", "redis://:***@redis.example:6379/2"),
        ("rediss://avtor:s3cret@redis.example/0", "rediss://avtor:***@redis.example/0"),
        ("rediss://u:p%40ss@h/0", "rediss://u:***@h/0"),
        ("redis://h:6379/0?password=pw&socket_timeout=5", "redis://h:6379/0?password=***&socket_timeout=5"),
        ("postgresql+psycopg://avtor:s3cret@db/avtor", "postgresql+psycopg://avtor:***@db/avtor"),
        ("postgresql://avtor:s3cret@[db/avtor", "postgresql://avtor:***@[db/avtor"),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert hide_password(url) == shown
    # The host library keeps a copy of its own (it depends on redis-py alone): both hide alike.
    assert redact_url(url) == hide_password(url)


SECRET_URLS = {
    "AVTOR_DATABASE_URL": "postgresql://avtor:db-s3cret@db/avtor",
    "AVTOR_REDIS_URL": "redis://avtor-worker:redis-s3cret@redis:6379/0",
}


def test_the_settings_repr_and_str_show_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_URLS.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    for shown in (repr(settings), str(settings), str(settings.store_url), repr(settings.redis_url)):
        assert "s3cret" not in shown
    assert str(settings.redis_url) == "redis://avtor-worker:***@redis:6379/0"
    assert str(settings.store_url) == "postgresql+psycopg://avtor:***@db/avtor"


def test_the_settings_give_the_whole_urls_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_URLS.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.redis_url.get_secret_value() == SECRET_URLS["AVTOR_REDIS_URL"]
    assert settings.store_url.get_secret_value() == "postgresql+psycopg://avtor:db-s3cret@db/avtor"


@pytest.mark.parametrize(
    ("name", "wrong"),
    [
        ("AVTOR_DATABASE_URL", "mysql://avtor:db-s3cret@db/avtor"),
        ("AVTOR_REDIS_URL", "http://avtor-worker:redis-s3cret@redis:6379/0"),
    ],
)
def test_a_wrong_url_is_named_in_the_error_without_its_password(
    monkeypatch: pytest.MonkeyPatch, name: str, wrong: str
) -> None:
    monkeypatch.setenv(name, wrong)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert name in str(refused.value) and ":***@" in str(refused.value)
    assert "s3cret" not in str(refused.value)


# --- trusting the license service ----------------------------------------------------------------

VENDOR_KEY = "TZ/an6y2EfzW1nwyOOqVtX8LZfPMG6S5YYk6Hd0kBgk="  # a generated key, as the vendor would give


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AVTOR_DEVELOPMENT_MODE", "AVTOR_LICENSE_SERVER_URL", "AVTOR_LICENSE_SERVER_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize(
    "url",
    ["http://licensing.example.com", "http://10.0.0.7:8470", "http://[2001:db8::1]/", "http://127.example"],
)
def test_a_license_service_over_plain_http_off_this_machine_is_refused_at_settings_load(url: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(license_server_url=url)
    assert f"AVTOR_LICENSE_SERVER_URL (got {url!r}): is plain HTTP to another machine" in str(error.value)
    assert "use the https:// URL" in str(error.value)


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize(
    "url",
    [
        "https://licensing.example.com",
        "http://127.0.0.1:8470",
        "http://127.1.2.3",
        "http://localhost:8470",
        "http://[::1]:8470",
    ],
)
def test_https_or_plain_http_on_loopback_is_accepted(url: str) -> None:
    assert load_settings(license_server_url=url).license_server_url == url


def test_development_mode_allows_plain_http_off_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVTOR_DEVELOPMENT_MODE", "1")
    monkeypatch.setenv("AVTOR_LICENSE_SERVER_URL", "http://license-server:8470")
    settings = load_settings()
    assert settings.development_mode
    assert settings.license_server_url == "http://license-server:8470"


@pytest.mark.usefixtures("production")
def test_the_development_key_is_refused_outside_development_mode() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(license_server_public_key=development_public_key())
    message = str(error.value)
    assert "AVTOR_LICENSE_SERVER_PUBLIC_KEY" in message
    assert "is the development license server's key" in message
    assert "AVTOR_DEVELOPMENT_MODE=1" in message


@pytest.mark.usefixtures("production")
def test_without_a_public_key_the_license_service_cannot_be_trusted_and_the_variable_is_named() -> None:
    settings = load_settings()
    assert not settings.development_mode
    with pytest.raises(SettingsError, match="AVTOR_LICENSE_SERVER_PUBLIC_KEY is not set"):
        settings.trusted_public_key()
    assert load_settings(license_server_public_key=VENDOR_KEY).trusted_public_key() == VENDOR_KEY


@pytest.mark.usefixtures("production")
def test_development_mode_trusts_the_development_key_unless_a_key_is_set() -> None:
    assert load_settings(development_mode=True).trusted_public_key() == development_public_key()
    assert load_settings(
        development_mode=True, license_server_public_key=VENDOR_KEY
    ).trusted_public_key() == (VENDOR_KEY)


def test_the_development_key_is_the_one_the_development_server_signs_with() -> None:
    assert development_public_key() == development_signer().public_key
