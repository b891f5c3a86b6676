"""A mistyped command or action is answered with the valid choices and the one probably meant."""

from __future__ import annotations

import pytest

from cli.main import parser


@pytest.mark.parametrize(
    ("argv", "meant"),
    [(["licence", "list"], "license"), (["user", "ad", "bob"], "add"), (["statsu"], "status")],
)
def test_a_near_miss_names_the_command_meant(
    argv: list[str], meant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice" in error
    assert f"Did you mean '{meant}'?" in error


def test_nothing_is_suggested_when_nothing_is_near(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["zzzzzz"])
    assert "Did you mean" not in capsys.readouterr().err
