"""Where `celery -A worker ...` finds the application (Celery looks for a `celery` module in the package)."""

from worker.app import app, log_json_from_the_start

log_json_from_the_start()

__all__ = ["app"]
