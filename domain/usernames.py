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


# Code points that render as nothing, or as a blank, whatever their category (Unicode's
# Default_Ignorable_Code_Point, from DerivedCoreProperties.txt, and the Braille blank):
# `carol` followed by a variation selector or a Hangul filler would look like `carol`.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Cn: not assigned yet, Co: private use: no font shows them as what they are.
_UNKNOWN_CATEGORIES = {"Cn": "the unassigned character", "Co": "the private-use character"}


def _invisible(code_point: int) -> bool:
    return any(first <= code_point <= last for first, last in _INVISIBLE_RANGES)


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
        category = unicodedata.category(character)
        what = _FORBIDDEN_CATEGORIES.get(category) or _UNKNOWN_CATEGORIES.get(category)
        if what is None and _invisible(ord(character)):
            what = "the invisible or blank character"
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
