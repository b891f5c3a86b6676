"""No password of a configured URL reaches a message: settings errors, store refusals, start-up lines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cli.main import main as avtorlm
from config import current_settings
from worker.enrolment_consumer import main as enrolment_consumer

PASSWORD = "db-s3cret-pw"
# Nothing listens on port 1: the store refuses the connection at once.
UNREACHABLE_STORE = f"postgresql://avtor:{PASSWORD}@127.0.0.1:1/avtor"


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AVTOR_REDIS_URL", "redis://avtor-admin:redis-s3cret-pw@127.0.0.1:1/0")
    current_settings.cache_clear()
    yield
    current_settings.cache_clear()


def test_a_wrong_database_url_is_refused_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AVTOR_DATABASE_URL", f"mysql://avtor:{PASSWORD}@db/avtor")
    assert avtorlm(["user", "list"]) == 2
    said = capsys.readouterr()
    assert "AVTOR_DATABASE_URL" in said.err and "mysql://avtor:***@db/avtor" in said.err
    assert PASSWORD not in said.out + said.err


def test_avtorlm_names_an_unreachable_store_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AVTOR_DATABASE_URL", UNREACHABLE_STORE)
    assert avtorlm(["user", "list"]) == 1
    said = capsys.readouterr()
    assert "postgresql+psycopg://avtor:***@127.0.0.1:1/avtor" in said.err
    assert PASSWORD not in said.out + said.err


def test_the_enrolment_consumer_names_an_unreachable_store_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AVTOR_DATABASE_URL", UNREACHABLE_STORE)
    assert enrolment_consumer([]) == 2
    said = capsys.readouterr()
    assert "avtor:***@127.0.0.1:1" in said.err
    assert PASSWORD not in said.out + said.err and "redis-s3cret-pw" not in said.out + said.err
