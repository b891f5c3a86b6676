"""How every process logs: plain text lines, or one JSON object per line (AVTOR_LOG_FORMAT=json).

The enrolment consumer, the Celery worker and beat, the console and the command line
all set their logging up here, each naming its role, so a log collector reads the same
fields from every process.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The attributes every LogRecord has; anything else on a record came with `extra=` and is an event field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
# A password in a URL written into a message (scheme://user:password@host): a last guard, the
# messages themselves already pass URLs through config.hide_password.
_URL_PASSWORD = re.compile(r"(//[^/@:\s]*:)[^@\s/]+@")


class JsonLines(logging.Formatter):
    """One JSON object per record: timestamp (UTC), level, role, logger, message and the event's fields."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "role": self.role,
            "logger": record.name,
            "message": _without_passwords(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_") and name not in document:
                document[name] = value
        if record.exc_info:
            document["exception"] = _without_passwords(self.formatException(record.exc_info))
        if record.stack_info:
            document["stack"] = _without_passwords(self.formatStack(record.stack_info))
        return json.dumps(document, default=str, ensure_ascii=False)


def _without_passwords(text: str) -> str:
    return _URL_PASSWORD.sub(r"\1***@", text)


def configure_logging(
    role: str, log_format: str, level: int | str = logging.INFO, text_format: str = TEXT_FORMAT
) -> None:
    """Send this process's log records to stderr, as text or as JSON lines naming `role`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(role) if log_format == "json" else logging.Formatter(text_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def log_json_lines(logger: logging.Logger, role: str) -> None:
    """Make the handlers another library set up on `logger` (Celery's) write JSON lines naming `role`."""
    for handler in logger.handlers:
        handler.setFormatter(JsonLines(role))
