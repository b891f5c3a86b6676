"""The benchmark's Celery application: the manager's own, plus the cheapest possible task on its own queue.

`celery -A bench.app worker -Q bench.noop` runs it with every setting of the
manager's Celery workers (pool, concurrency, prefetch, late acknowledgement,
results in Redis); it is the baseline of the old path, where each start was a
Celery task.
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Exchange, Queue

from bench.celery_baseline import NOOP_QUEUE, NOOP_TASK
from worker.app import app

app.conf.task_queues = [
    *app.conf.task_queues,
    Queue(NOOP_QUEUE, Exchange(NOOP_QUEUE), routing_key=NOOP_QUEUE),
]


@app.task(name=NOOP_TASK, queue=NOOP_QUEUE)
def noop(**_: Any) -> None:
    """Do nothing: the cheapest task a Celery worker can run."""


celery = app
