"""The Celery application: `celery -A worker worker` and `celery -A worker beat`."""

from worker.app import app

celery = app

__all__ = ["app", "celery"]
