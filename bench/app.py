"""The benchmark's Celery application: the manager's own, plus the cheapest possible task.

Both the baseline and the enrolment run on this one application, so they share
every worker setting, the task base class and the queue.
"""

from __future__ import annotations

from typing import Any

from worker.app import app
from worker.guard import GuardedTask

NOOP_TASK = "bench.noop"


@app.task(name=NOOP_TASK, base=GuardedTask)
def noop(**_: Any) -> None:
    """Do nothing: the baseline every enrolment is compared with."""


celery = app
