"""The license keys the development server knows, read from a JSON file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

STATUSES = ("active", "expired", "suspended", "revoked")
KEY_PATTERN = re.compile(r"^[A-Z0-9]+(?:-[A-Z0-9]+)*$")
MAX_KEY_LENGTH = 128
EDITABLE_FIELDS = ("seats", "status", "expires_at", "expires_in_days", "customer")


class KeysFileError(ValueError):
    """The keys file, or a change to a key, is not usable; the message says why."""


@dataclass(frozen=True)
class KeyRecord:
    """One license key as the vendor sold it."""

    key: str
    seats: int
    status: str = "active"
    expires_at: datetime | None = None
    customer: str = ""

    def as_json(self) -> dict[str, Any]:
        """The key as the `/_dev/keys` endpoints show it."""
        return {
            "key": self.key,
            "seats": self.seats,
            "status": self.status,
            "expires_at": format_instant(self.expires_at),
            "customer": self.customer,
        }


def format_instant(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def save_keys(path: Path, records: Iterable[KeyRecord]) -> None:
    """Write the keys as a keys file (expiry as instants), replacing `path` at once."""
    document = {"keys": [record.as_json() for record in records]}
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)


def canonical_key(raw: object) -> str:
    """The key trimmed and upper case; refuse anything that is not letters, digits and dashes."""
    if not isinstance(raw, str) or not raw.strip():
        raise KeysFileError("license_key is required")
    key = raw.strip().upper()
    if len(key) > MAX_KEY_LENGTH or not KEY_PATTERN.match(key):
        raise KeysFileError(
            "license_key is malformed: a key is letters and digits in groups separated by dashes"
        )
    return key


def load_keys(path: Path, now: datetime) -> dict[str, KeyRecord]:
    """Read a keys file: {"keys": [{"key", "seats", "status", "expires_at" or "expires_in_days", ...}]}."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise KeysFileError(f"The keys file {path} cannot be read: {error.strerror}.") from None
    except ValueError as error:
        raise KeysFileError(f"The keys file {path} is not valid JSON: {error}.") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeysFileError(f'The keys file {path} must be a JSON object with a "keys" list.')
    keys: dict[str, KeyRecord] = {}
    for number, entry in enumerate(entries, start=1):
        try:
            record = new_key(entry.get("key") if isinstance(entry, dict) else None, entry, now)
        except KeysFileError as error:
            raise KeysFileError(f"Key number {number} in {path}: {error}") from None
        if record.key in keys:
            raise KeysFileError(f"Key number {number} in {path}: {record.key} appears twice.")
        keys[record.key] = record
    return keys


def new_key(raw_key: object, fields: object, now: datetime) -> KeyRecord:
    """A key from its JSON description; `seats` is required."""
    key = canonical_key(raw_key)
    if not isinstance(fields, dict) or "seats" not in fields:
        raise KeysFileError(f"{key} needs at least a number of seats.")
    return changed_key(KeyRecord(key=key, seats=0), fields, now)


def changed_key(record: KeyRecord, fields: object, now: datetime) -> KeyRecord:
    """`record` with the given fields changed; unknown fields or wrong values are refused."""
    if not isinstance(fields, dict):
        raise KeysFileError("A key's fields must be a JSON object.")
    unknown = sorted(set(fields) - {*EDITABLE_FIELDS, "key"})
    if unknown:
        raise KeysFileError(f"Unknown fields {', '.join(unknown)}; a key has {', '.join(EDITABLE_FIELDS)}.")
    changes: dict[str, Any] = {}
    if "seats" in fields:
        changes["seats"] = _seats(fields["seats"])
    if "status" in fields:
        changes["status"] = _status(fields["status"])
    if "customer" in fields:
        changes["customer"] = _customer(fields["customer"])
    if "expires_at" in fields and "expires_in_days" in fields:
        raise KeysFileError("Give expires_at or expires_in_days, not both.")
    if "expires_at" in fields:
        changes["expires_at"] = _instant(fields["expires_at"])
    if "expires_in_days" in fields:
        changes["expires_at"] = now + timedelta(days=_days(fields["expires_in_days"]))
    return replace(record, **changes)


def _seats(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KeysFileError(f"seats must be a whole number, 0 or more, not {value!r}.")
    return value


def _status(value: object) -> str:
    if value not in STATUSES:
        raise KeysFileError(f"status must be one of {', '.join(STATUSES)}, not {value!r}.")
    return str(value)


def _customer(value: object) -> str:
    if not isinstance(value, str):
        raise KeysFileError(f"customer must be a string, not {value!r}.")
    return value


def _instant(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(UTC)
    raise KeysFileError(f"expires_at must be an RFC 3339 instant with a time zone or null, not {value!r}.")


def _days(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KeysFileError(
            f"expires_in_days must be a number of days (negative: in the past), not {value!r}."
        )
    return float(value)
