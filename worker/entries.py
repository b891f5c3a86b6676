"""From a stream entry, as a host wrote it, to an enrolment request or the reason it is refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.enrolment import EnrolmentRequest, InvalidEnrolment, read_enrolment_request, read_request_id
from domain.moments import format_instant
from worker.requests_stream import MAX_ENTRY_BYTES, Entry

# What is kept of one field of an entry that is set aside, in characters.
KEPT_VALUE_CHARACTERS = 256


def request_id_of(entry: Entry) -> str | None:
    """The entry's request id if it is usable, whatever else is wrong with the entry."""
    raw = entry.fields.get("request_id")
    if raw is None:
        return None
    try:
        return read_request_id(raw.decode("ascii"))
    except UnicodeDecodeError:
        return None


def read_entry(entry: Entry) -> EnrolmentRequest:
    """The entry as an enrolment request; InvalidEnrolment says what is wrong with it."""
    request_id = request_id_of(entry)
    if entry.size > MAX_ENTRY_BYTES or entry.size < 0:
        holds = f"{entry.size} bytes" if entry.size >= 0 else f"{entry.field_count} fields"
        raise InvalidEnrolment(
            f"the entry holds {holds}; at most {MAX_ENTRY_BYTES} bytes are accepted.", request_id
        )
    fields: dict[str, str] = {}
    for name, value in entry.fields.items():
        try:
            fields[name] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEnrolment(f"the field {name} is not UTF-8 text.", request_id) from None
    return read_enrolment_request(fields)


def kept_entry(entry: Entry, reason: str, at: datetime) -> dict[str, Any]:
    """What is kept of an entry set aside: a few KiB at most, whatever the entry's size."""
    return {
        "at": format_instant(at, "milliseconds"),
        "reason": reason,
        "entry_id": entry.id,
        "request_id": request_id_of(entry),
        "size": entry.size,
        "field_count": entry.field_count,
        "deliveries": entry.deliveries,
        "fields": {
            name: _shortened(value.decode("utf-8", "backslashreplace"))
            for name, value in entry.fields.items()
        },
        "other_fields": [_shortened(name) for name in entry.other_names],
    }


def _shortened(text: str) -> str:
    if len(text) <= KEPT_VALUE_CHARACTERS:
        return text
    return text[:KEPT_VALUE_CHARACTERS] + "…"
