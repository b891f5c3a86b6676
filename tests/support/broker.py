"""A kombu connection through the manager's guarded Redis transport, configured as its workers' is."""

from __future__ import annotations

from kombu.connection import Connection


def guarded_connection(url: str, visibility_timeout: float = 5) -> Connection:
    """A connection to `url` through the worker's transport: a list per queue, a short visibility timeout."""
    return Connection(
        url,
        transport="worker.transport:GuardedTransport",
        transport_options={"priority_steps": [0], "visibility_timeout": visibility_timeout},
    )
