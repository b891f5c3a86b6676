"""The console's first administrator that scripts/run makes: added once, a new password at every start."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from adapters.passwords import Argon2Passwords
from adapters.sql.access import SqlAccess
from domain.moments import utc_now
from domain.services.access import add_administrator, list_administrators
from runner.supervisor import CONSOLE_ADMIN, RUN_ACTOR, console_administrator


def test_the_run_adds_admin_once_and_gives_it_a_new_password_at_every_start(engine: Engine) -> None:
    access, hasher = SqlAccess(engine), Argon2Passwords()
    add_administrator("ada", "ada's own long password", "ada (avtorlm)", access, hasher, utc_now())

    first = console_administrator(engine)
    added = access.administrator(CONSOLE_ADMIN)
    assert added is not None and added.created_by == RUN_ACTOR
    assert len(first) >= 24 and hasher.verify(added.password_hash, first)

    # The next start: the same administrator, a new password; the earlier one no longer works.
    second = console_administrator(engine)
    again = access.administrator(CONSOLE_ADMIN)
    assert again is not None and again.created_at == added.created_at
    assert second != first
    assert hasher.verify(again.password_hash, second) and not hasher.verify(again.password_hash, first)

    # The administrators of the installation's own are left as they were.
    assert [admin.name for admin in list_administrators(access)] == ["ada", CONSOLE_ADMIN]
    ada = access.administrator("ada")
    assert ada is not None and hasher.verify(ada.password_hash, "ada's own long password")
