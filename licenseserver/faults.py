"""The switches that make the development server misbehave on purpose, for tests and demos."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

SIGNATURE_FAULTS = ("wrong", "missing")
MAX_DELAY_SECONDS = 600.0


class FaultsError(ValueError):
    """A fault switch with a value the server cannot use."""


@dataclass(frozen=True)
class Faults:
    """How the next validations go wrong; all off by default."""

    delay_seconds: float = 0.0  # answer only after this long
    fail_with: int | None = None  # answer with this 429 or 5xx status instead
    retry_after: int | None = None  # seconds, sent as Retry-After with `fail_with`
    garbage: bool = False  # answer 200 with a body that is not JSON
    signature: str | None = None  # "wrong": sign other content; "missing": send no signature
    times: int | None = None  # how many validations these faults apply to; None: until cleared

    @property
    def any(self) -> bool:
        """Whether any switch is on."""
        return bool(self.delay_seconds or self.fail_with or self.garbage or self.signature)

    def as_json(self) -> dict[str, Any]:
        """The switches as the `/_dev/faults` endpoint shows them."""
        return asdict(self)

    def used_once(self) -> Faults:
        """The faults left after one validation used them."""
        if self.times is None:
            return self
        return replace(self, times=self.times - 1) if self.times > 1 else Faults()


def read_faults(document: object) -> Faults:
    """Faults from the JSON body of `POST /_dev/faults`; wrong values are refused with the reason."""
    if not isinstance(document, dict):
        raise FaultsError("The faults must be a JSON object.")
    known = set(Faults.__dataclass_fields__)
    unknown = sorted(set(document) - known)
    if unknown:
        raise FaultsError(
            f"Unknown fault switches {', '.join(unknown)}; there are {', '.join(sorted(known))}."
        )
    delay = document.get("delay_seconds", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY_SECONDS:
        raise FaultsError(f"delay_seconds must be a number from 0 to {MAX_DELAY_SECONDS:.0f}.")
    fail_with = document.get("fail_with")
    if fail_with is not None and not (
        isinstance(fail_with, int) and (fail_with == 429 or 500 <= fail_with <= 599)
    ):
        raise FaultsError("fail_with must be 429 or a 5xx status such as 500 or 503, or null.")
    return Faults(
        delay_seconds=float(delay),
        fail_with=fail_with,
        retry_after=_optional_count("retry_after", document.get("retry_after"), minimum=0),
        garbage=_flag("garbage", document.get("garbage", False)),
        signature=_signature(document.get("signature")),
        times=_optional_count("times", document.get("times"), minimum=1),
    )


def _optional_count(name: str, value: object, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FaultsError(f"{name} must be a whole number, {minimum} or more, or null.")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise FaultsError(f"{name} must be true or false.")
    return value


def _signature(value: object) -> str | None:
    if value is not None and value not in SIGNATURE_FAULTS:
        raise FaultsError(f'signature must be "wrong", "missing" or null, not {value!r}.')
    return None if value is None else str(value)
