"""The beat schedule: one frequent tick that re-validates whatever licenses are due.

When each license is due lives in the store, not in beat: a tick claims due
licenses atomically, so beat may restart, miss runs or run twice by mistake and
every license is still checked once per interval (and once after missed runs).
A tick every AVTOR_ALERT_TICK evaluates the alerts; the store remembers what was sent.
With AVTOR_RECLAIM_IDLE_AFTER set, an hourly tick takes back idle seats; it too
may run twice or late without harm (it takes back what is idle when it runs).
"""

from __future__ import annotations

from config import Settings

REVALIDATE_DUE = "avtor.admin.revalidate_due"
RECLAIM_IDLE = "avtor.admin.reclaim_idle"
EVALUATE_ALERTS = "avtor.admin.evaluate_alerts"
# Reclamation is counted in days: looking once an hour is timely enough.
RECLAIM_TICK = 3600.0


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """Celery's `beat_schedule` for `settings`."""
    tick = settings.revalidate_tick.total_seconds()
    schedule: dict[str, dict[str, object]] = {
        "revalidate-due-licenses": {
            "task": REVALIDATE_DUE,
            "schedule": tick,
            # A tick no worker took in time is worth nothing: the next one does the same work.
            "options": {"expires": tick},
        }
    }
    alert_tick = settings.alert_tick.total_seconds()
    # Which alerts were sent lives in the store: a tick run twice or late repeats none.
    schedule["evaluate-alerts"] = {
        "task": EVALUATE_ALERTS,
        "schedule": alert_tick,
        "options": {"expires": alert_tick},
    }
    if settings.reclaim_idle_after is not None:
        schedule["reclaim-idle-seats"] = {
            "task": RECLAIM_IDLE,
            "schedule": RECLAIM_TICK,
            "options": {"expires": RECLAIM_TICK},
        }
    return schedule
