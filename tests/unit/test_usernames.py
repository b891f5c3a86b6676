import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.usernames import MAX_USERNAME_LENGTH, InvalidUsername, normalize_username


def test_case_spacing_and_compatibility_forms_are_one_user() -> None:
    assert normalize_username("sitecore\\Bob") == normalize_username("  SITECORE\\bob ")
    assert normalize_username("ｓｉｔｅｃｏｒｅ\\ｂｏｂ") == "sitecore\\bob"


def test_domain_prefix_is_part_of_the_name() -> None:
    assert normalize_username("sitecore\\bob") != normalize_username("extranet\\bob")


def test_case_folding_goes_beyond_lower_case() -> None:
    assert normalize_username("STRASSE") == normalize_username("straße")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "missing"),
        (42, "int"),
        (["bob"], "list"),
        ("", "empty"),
        ("   ", "empty"),
        ("bob\nalice", "control character U+000A"),
        ("bob\x00", "control character U+0000"),
        ("bob\u2028alice", "line separator U+2028"),
        ("bob\ud800", "lone surrogate U+D800"),
        ("carol\u200b", "invisible or direction-changing character U+200B"),
        ("bob\u2066x\u2069", "invisible or direction-changing character U+2066"),
        ("soft\u00adhyphen", "invisible or direction-changing character U+00AD"),
        ("x" * (MAX_USERNAME_LENGTH + 1), "257 characters"),
    ],
)
def test_bad_names_are_refused_with_the_reason(raw: object, reason: str) -> None:
    with pytest.raises(InvalidUsername, match=re.escape(reason)):
        normalize_username(raw)


def test_a_name_of_exactly_the_limit_is_accepted() -> None:
    assert len(normalize_username("x" * MAX_USERNAME_LENGTH)) == MAX_USERNAME_LENGTH


def test_length_is_counted_after_normalization() -> None:
    # U+FB03 (ﬃ) expands to three letters under NFKC.
    with pytest.raises(InvalidUsername, match="characters long"):
        normalize_username("\ufb03" * 100)


@given(st.text())
def test_normalization_is_stable_or_refuses_clearly(raw: str) -> None:
    try:
        name = normalize_username(raw)
    except InvalidUsername as error:
        assert str(error)
    else:
        assert normalize_username(name) == name
        assert 1 <= len(name) <= MAX_USERNAME_LENGTH


@pytest.mark.parametrize(
    "hidden",
    [
        "\u034f",  # combining grapheme joiner
        "\ufe0f",  # variation selector
        "\U000e0100",  # variation selector supplement
        "\u115f",  # Hangul choseong filler
        "\u3164",  # Hangul filler
        "\uffa0",  # halfwidth Hangul filler
        "\u2800",  # Braille pattern blank
        "\u17b4",  # Khmer vowel inherent
        "\u0378",  # unassigned
        "\ue000",  # private use
    ],
)
def test_a_name_with_a_character_that_shows_as_nothing_is_refused(hidden: str) -> None:
    with pytest.raises(InvalidUsername, match=r"character U\+"):
        normalize_username("carol" + hidden)
