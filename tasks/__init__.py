"""Thin Celery tasks: read the message, call a use case, map transient faults to a retry."""
