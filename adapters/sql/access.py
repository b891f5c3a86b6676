"""Administrators, console sessions, API tokens and failed sign-ins, in the store's database.

Each call is one short transaction of its own: none takes the seat ledger's lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from adapters.sql import tables as t
from domain.access import Administrator, ApiToken, ConsoleSession, RecentFailures

# Failed sign-ins older than this are of no use to the throttle and are deleted.
FAILURES_KEPT = timedelta(hours=1)


class SqlAccess:
    """The access tables of one store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- administrators ------------------------------------------------------------------------

    def administrator(self, name: str) -> Administrator | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(t.administrators).where(t.administrators.c.name == name)
            ).one_or_none()
        return None if row is None else _administrator(row)

    def administrators(self) -> list[Administrator]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(t.administrators).order_by(t.administrators.c.name))
            return [_administrator(row) for row in rows]

    def add_administrator(self, administrator: Administrator) -> bool:
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(t.administrators).values(
                        name=administrator.name,
                        password_hash=administrator.password_hash,
                        created_at=administrator.created_at,
                        created_by=administrator.created_by,
                        password_changed_at=administrator.password_changed_at,
                    )
                )
        except IntegrityError:
            return False
        return True

    def set_password(self, name: str, password_hash: str, at: datetime) -> bool:
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(t.administrators)
                .where(t.administrators.c.name == name)
                .values(password_hash=password_hash, password_changed_at=at)
            ).rowcount
            connection.execute(delete(t.console_sessions).where(t.console_sessions.c.administrator == name))
        return bool(changed)

    def remove_administrator(self, name: str) -> bool:
        with self.engine.begin() as connection:
            connection.execute(delete(t.console_sessions).where(t.console_sessions.c.administrator == name))
            removed = connection.execute(
                delete(t.administrators).where(t.administrators.c.name == name)
            ).rowcount
        return bool(removed)

    # --- sessions ------------------------------------------------------------------------------

    def add_session(self, session: ConsoleSession) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(t.console_sessions).values(
                    digest=session.digest,
                    administrator=session.administrator,
                    csrf_token=session.csrf_token,
                    created_at=session.created_at,
                    last_seen_at=session.last_seen_at,
                )
            )

    def session(self, digest: str) -> ConsoleSession | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(t.console_sessions).where(t.console_sessions.c.digest == digest)
            ).one_or_none()
        if row is None:
            return None
        return ConsoleSession(row.digest, row.administrator, row.csrf_token, row.created_at, row.last_seen_at)

    def touch_session(self, digest: str, at: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(t.console_sessions)
                .where(t.console_sessions.c.digest == digest)
                .where(t.console_sessions.c.last_seen_at < at)
                .values(last_seen_at=at)
            )

    def remove_session(self, digest: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(t.console_sessions).where(t.console_sessions.c.digest == digest))

    def remove_sessions_idle_since(self, before: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(t.console_sessions).where(t.console_sessions.c.last_seen_at < before))

    # --- failed sign-ins -----------------------------------------------------------------------

    def record_failure(self, name: str, address: str, at: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(t.sign_in_failures).values(name=name, address=address[:64], at=at))
            connection.execute(delete(t.sign_in_failures).where(t.sign_in_failures.c.at < at - FAILURES_KEPT))

    def recent_failures(self, name: str, address: str, since: datetime) -> RecentFailures:
        failures = t.sign_in_failures
        recent = failures.c.at >= since
        with self.engine.connect() as connection:
            for_name = connection.execute(
                select(func.count()).where(failures.c.name == name, recent)
            ).scalar_one()
            from_address = connection.execute(
                select(func.count()).where(failures.c.address == address[:64], recent)
            ).scalar_one()
            oldest = connection.execute(
                select(func.min(failures.c.at)).where(
                    recent, or_(failures.c.name == name, failures.c.address == address[:64])
                )
            ).scalar_one()
        # MIN() returns the column's type, so the instant comes back aware as every other.
        return RecentFailures(int(for_name), int(from_address), oldest)

    def forget_failures(self, name: str, before: datetime | None = None) -> None:
        statement = delete(t.sign_in_failures).where(t.sign_in_failures.c.name == name)
        if before is not None:
            statement = statement.where(t.sign_in_failures.c.at < before)
        with self.engine.begin() as connection:
            connection.execute(statement)

    # --- API tokens ----------------------------------------------------------------------------

    def add_token(self, token: ApiToken) -> bool:
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(t.api_tokens).values(
                        name=token.name,
                        digest=token.digest,
                        shown=token.shown,
                        created_at=token.created_at,
                        created_by=token.created_by,
                        last_used_at=token.last_used_at,
                    )
                )
        except IntegrityError:
            return False
        return True

    def token(self, digest: str) -> ApiToken | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(t.api_tokens).where(t.api_tokens.c.digest == digest)
            ).one_or_none()
        return None if row is None else _token(row)

    def tokens(self) -> list[ApiToken]:
        with self.engine.connect() as connection:
            return [
                _token(row) for row in connection.execute(select(t.api_tokens).order_by(t.api_tokens.c.name))
            ]

    def touch_token(self, digest: str, at: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(t.api_tokens).where(t.api_tokens.c.digest == digest).values(last_used_at=at)
            )

    def remove_token(self, name: str) -> bool:
        with self.engine.begin() as connection:
            return bool(connection.execute(delete(t.api_tokens).where(t.api_tokens.c.name == name)).rowcount)


def _administrator(row: Row[tuple[object, ...]]) -> Administrator:
    return Administrator(row.name, row.password_hash, row.created_at, row.created_by, row.password_changed_at)


def _token(row: Row[tuple[object, ...]]) -> ApiToken:
    return ApiToken(row.name, row.digest, row.shown, row.created_at, row.created_by, row.last_used_at)
