"""User names as the CMS sends them, and the one form in which they are compared."""

from __future__ import annotations

import unicodedata

MAX_USERNAME_LENGTH = 256

# Cc: C0/C1 controls (tab, newline, NUL...); Cs: lone surrogates, which JSON can carry
# but no store can save; Zl/Zp: line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


class InvalidUsername(ValueError):
    """A user name the manager refuses; the message says why, for the host."""


def normalize_username(raw: object) -> str:
    """Return the canonical form of a user name: NFKC, trimmed, case-folded."""
    if not isinstance(raw, str):
        kind = "missing" if raw is None else f"a {type(raw).__name__}, not a string"
        raise InvalidUsername(f"username is {kind}: send the CMS user name as a string.")
    name = unicodedata.normalize("NFKC", raw).strip()
    name = unicodedata.normalize("NFKC", name.casefold()).strip()
    if not name:
        raise InvalidUsername("username is empty: send the CMS user name, e.g. sitecore\\bob.")
    if len(name) > MAX_USERNAME_LENGTH:
        raise InvalidUsername(
            f"username is {len(name)} characters long: at most {MAX_USERNAME_LENGTH} are allowed."
        )
    for character in name:
        if unicodedata.category(character) in _FORBIDDEN_CATEGORIES:
            raise InvalidUsername(
                f"username contains the control character U+{ord(character):04X}: "
                "send the name without control characters."
            )
    return name


def display_username(raw: str) -> str:
    """The name as first seen, trimmed, kept for people to read."""
    return unicodedata.normalize("NFKC", raw).strip()
