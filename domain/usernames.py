"""User names as the CMS sends them, and the one form in which they are compared."""

from __future__ import annotations

import unicodedata

MAX_USERNAME_LENGTH = 256

# Cc: C0/C1 controls (tab, newline, NUL...); Cs: lone surrogates, which JSON can carry
# but no store can save; Zl/Zp: line and paragraph separators; Cf: format characters,
# which are invisible (zero-width space, joiners, soft hyphen) or turn the direction of
# text (bidi overrides and isolates): `carol` with a zero-width space would look like
# `carol` and take a second seat.
_FORBIDDEN_CATEGORIES = {
    "Cc": "the control character",
    "Cs": "the lone surrogate",
    "Zl": "the line separator",
    "Zp": "the paragraph separator",
    "Cf": "the invisible or direction-changing character",
}


class InvalidUsername(ValueError):
    """A user name the manager refuses; the message says why."""


def normalize_username(raw: object) -> str:
    """Return the canonical form of a user name: NFKC, trimmed, case-folded."""
    if not isinstance(raw, str):
        kind = "missing" if raw is None else f"a {type(raw).__name__}, not a string"
        raise InvalidUsername(
            f"the user name is {kind}; a CMS user name (text) is needed, e.g. sitecore\\bob."
        )
    # A name far too long is refused before any work proportional to its length.
    if len(raw) > 4 * MAX_USERNAME_LENGTH:
        raise InvalidUsername(_too_long(len(raw)))
    name = unicodedata.normalize("NFKC", raw).strip()
    name = unicodedata.normalize("NFKC", name.casefold()).strip()
    if not name:
        raise InvalidUsername("the user name is empty; a CMS user name is needed, e.g. sitecore\\bob.")
    if len(name) > MAX_USERNAME_LENGTH:
        raise InvalidUsername(_too_long(len(name)))
    for character in name:
        what = _FORBIDDEN_CATEGORIES.get(unicodedata.category(character))
        if what is not None:
            raise InvalidUsername(
                f"the user name contains {what} U+{ord(character):04X}; names with control, "
                "invisible or direction-changing characters are refused."
            )
    return name


def display_username(raw: str) -> str:
    """The name as first seen, trimmed, kept for people to read."""
    return unicodedata.normalize("NFKC", raw).strip()


def _too_long(length: int) -> str:
    return f"the user name is {length} characters long; at most {MAX_USERNAME_LENGTH} are allowed."
