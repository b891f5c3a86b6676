"""Where `celery -A worker ...` finds the application (Celery looks for a `celery` module in the package)."""

from worker.app import app

__all__ = ["app"]
