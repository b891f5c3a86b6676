"""The console's Users and License tabs show reserved and idle users and the over-limit policy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.sql import SqlStore, create_store_engine
from domain.moments import utc_now
from domain.services.users import add_user
from tests.e2e.test_console import Browser, accepted
from tests.support.console import Installation, installation
from tests.support.license_server import key_entry

FIVE = "AVTR-KEEP-ACTV-0005"
GRACE = timedelta(days=14)


@pytest.fixture
def manager(tmp_path: Path, redis_url: str) -> Iterator[Installation]:
    url = f"sqlite:///{tmp_path / 'avtor.sqlite3'}"
    with installation(url, redis_url, [key_entry(FIVE, 5, expires_at=None)], workers=False) as running:
        yield running


def test_the_users_tab_marks_reserved_users_and_filters_the_idle_ones(manager: Installation) -> None:
    browser: Browser = accepted(manager)
    browser.ok("POST", "/licenses", {"key": FIVE}, status=201)
    store = SqlStore(create_store_engine(manager.store_url))
    for name in ("sitecore\\Ann", "bob", "cid"):
        add_user(name, "ada", store, utc_now(), GRACE, reserved=name == "bob")
    store.touch_seats(["sitecore\\ann", "bob"], utc_now() - timedelta(days=100))
    store.engine.dispose()

    everyone = browser.get("/users").text
    assert everyone.count('<span class="reserved"') == 1
    idle = browser.get("/users?idle=90d").text
    assert "1 user has not been seen for 90d" in idle
    assert "sitecore\\Ann" in idle and ">bob<" not in idle and ">cid<" not in idle
    assert "Nobody unreserved has gone unseen for 1000d" in browser.get("/users?idle=1000d").text
    assert "is not a time" in browser.get("/users?idle=soon").text

    license_tab = browser.get("/license").text
    assert 'data-policy="block-all"' in license_tab
    assert browser.ok("GET", "/status")["over_limit_policy"] == "block-all"
