"""The beat schedule: one frequent tick that re-validates whatever licenses are due.

When each license is due lives in the store, not in beat: a tick claims due
licenses atomically, so beat may restart, miss runs or run twice by mistake and
every license is still checked once per interval (and once after missed runs).
"""

from __future__ import annotations

from config import Settings

REVALIDATE_DUE = "avtor.admin.revalidate_due"


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """Celery's `beat_schedule` for `settings`."""
    tick = settings.revalidate_tick.total_seconds()
    return {
        "revalidate-due-licenses": {
            "task": REVALIDATE_DUE,
            "schedule": tick,
            # A tick no worker took in time is worth nothing: the next one does the same work.
            "options": {"expires": tick},
        }
    }
