"""Sending an admin task: its arguments are shown in logs, events and monitors with keys masked.

Celery puts a repr of a task's arguments in the message's headers (`kwargsrepr`), which
workers, events and monitors such as Flower show. The one argument that can carry a secret
is `add_license`'s `license_key`: it travels in the message body, for the worker to validate,
and is masked in that repr. Every other task names a license by its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from domain.licenses import masked_key

# The arguments whose value is a license key.
KEY_ARGUMENTS = frozenset({"license_key"})


def arguments_for_logs(kwargs: Mapping[str, Any]) -> str:
    """The repr of a task's keyword arguments with every license key masked."""
    return repr(
        {name: masked_key(str(value)) if name in KEY_ARGUMENTS else value for name, value in kwargs.items()}
    )


def send_admin_task(app: Celery, name: str, kwargs: Mapping[str, Any]) -> AsyncResult:
    """Send the admin task `name` with `kwargs`; its arguments' repr shows no key in full."""
    return app.send_task(name, kwargs=dict(kwargs), argsrepr="()", kwargsrepr=arguments_for_logs(kwargs))
