"""Notice channels and every delivery attempt, in the store's database.

Each call is one short transaction of its own: none takes the seat ledger's lock.
"""

from __future__ import annotations

import json

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from adapters.sql import tables as t
from domain.notices import Channel, ChannelKind, DeliveryAttempt
from domain.refusals import Refused


class SqlNotices:
    """The notice channels and delivery attempts of one store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_channel(self, channel: Channel) -> None:
        """Keep a new channel; refused if the name is taken."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(t.notice_channels).values(
                        name=channel.name,
                        kind=channel.kind.value,
                        target=channel.target,
                        options=json.dumps(channel.options, sort_keys=True),
                        secret=channel.secret,
                        created_at=channel.created_at,
                    )
                )
        except IntegrityError:
            raise Refused(
                f"A channel named {channel.name!r} exists already: remove it first "
                f"(avtorlm notify remove {channel.name}) or choose another name."
            ) from None

    def channels(self) -> list[Channel]:
        """Every channel, by name."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(t.notice_channels).order_by(t.notice_channels.c.name))
            return [_channel(row) for row in rows]

    def channel(self, name: str) -> Channel | None:
        """The channel named `name`, if any."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(t.notice_channels).where(t.notice_channels.c.name == name)
            ).one_or_none()
        return None if row is None else _channel(row)

    def remove_channel(self, name: str) -> bool:
        """Remove a channel; False if there was none of that name."""
        with self.engine.begin() as connection:
            removed = connection.execute(delete(t.notice_channels).where(t.notice_channels.c.name == name))
        return bool(removed.rowcount)

    def record_attempt(self, attempt: DeliveryAttempt) -> None:
        """Write down one delivery attempt."""
        with self.engine.begin() as connection:
            connection.execute(
                insert(t.notice_deliveries).values(
                    notice_id=attempt.notice_id,
                    channel=attempt.channel,
                    alert_key=attempt.alert_key,
                    notice_kind=attempt.notice_kind,
                    attempt=attempt.attempt,
                    at=attempt.at,
                    outcome=attempt.outcome,
                    detail=attempt.detail[:2000],
                )
            )

    def attempts(self, limit: int = 100) -> list[DeliveryAttempt]:
        """The latest delivery attempts, newest first."""
        deliveries = t.notice_deliveries
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(deliveries).order_by(deliveries.c.at.desc(), deliveries.c.id.desc()).limit(limit)
            )
            return [
                DeliveryAttempt(
                    row.notice_id,
                    row.channel,
                    row.alert_key,
                    row.notice_kind,
                    row.attempt,
                    row.at,
                    row.outcome,
                    row.detail,
                    row.id,
                )
                for row in rows
            ]


def _channel(row: Row[tuple[object, ...]]) -> Channel:
    return Channel(
        name=row.name,
        kind=ChannelKind(row.kind),
        target=row.target,
        secret=row.secret,
        created_at=row.created_at,
        options=json.loads(row.options),
    )
