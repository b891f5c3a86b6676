"""The JSON lines formatter: one object per record, the event's fields, no URL password."""

from __future__ import annotations

import json
import logging
import sys

from config.logs import JsonLines


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("avtor.test", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_json_line_with_timestamp_level_role_and_the_events_fields() -> None:
    line = JsonLines("worker").format(record("Batch of %d entries.", 3, event="enrolment_batch", entries=3))
    document = json.loads(line)
    assert "\n" not in line
    assert document["role"] == "worker" and document["level"] == "INFO" and document["logger"] == "avtor.test"
    assert document["timestamp"].endswith("+00:00")
    assert document["message"] == "Batch of 3 entries."
    assert document["event"] == "enrolment_batch" and document["entries"] == 3
    assert "args" not in document and "msg" not in document


def test_a_password_in_a_url_in_the_message_or_the_traceback_is_hidden() -> None:
    url = "postgresql+psycopg://avtor:s3cret-Pw@db.example:5432/avtor"
    try:
        raise RuntimeError(f"cannot reach {url}")
    except RuntimeError:
        failed = record("Store at %s failed.", url)
        failed.exc_info = sys.exc_info()
    line = JsonLines("cli").format(failed)
    assert "s3cret-Pw" not in line
    document = json.loads(line)
    assert "avtor:***@db.example" in document["message"] and "RuntimeError" in document["exception"]
