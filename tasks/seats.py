"""`avtor.admin.reclaim_idle`: the schedule's tick that takes back the seats of idle editors."""

from __future__ import annotations

import logging
from typing import Any

from domain.moments import format_instant
from domain.services.reclamation import reclaim_idle_seats
from tasks.admin import AdminTask
from tasks.messages import counts_message, done
from worker import wiring
from worker.app import app
from worker.schedule import RECLAIM_IDLE

log = logging.getLogger(__name__)


@app.task(name=RECLAIM_IDLE, base=AdminTask, ignore_result=True)
def reclaim_idle() -> dict[str, Any]:
    """Take back the seats of unreserved editors not seen for AVTOR_RECLAIM_IDLE_AFTER (if set)."""
    settings = wiring.settings()
    if settings.reclaim_idle_after is None:
        return done("Idle-seat reclamation is off (AVTOR_RECLAIM_IDLE_AFTER is not set).", reclaimed=[])
    now = wiring.now()
    reclaimed, counts = reclaim_idle_seats(
        wiring.store(), now, settings.reclaim_idle_after, settings.grace_period
    )
    for seat in reclaimed:
        log.info("Seat of %s reclaimed: last seen %s.", seat.display_name, format_instant(seat.last_seen))
    names = [seat.username for seat in reclaimed]
    return done(f"{len(names)} idle seats reclaimed.", reclaimed=names, **counts_message(counts))
