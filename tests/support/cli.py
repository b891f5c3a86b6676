"""`avtorlm` as the administrator runs it: the installed console script, as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.workers import ROOT

AVTORLM = Path(sys.executable).with_name("avtorlm")
TIMEOUT = 120.0


@dataclass(frozen=True)
class Answer:
    """What one command printed, and its exit code."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """Everything printed, stdout then stderr."""
        return self.out + self.err

    def json(self) -> dict[str, Any]:
        """Standard output read as the JSON object it must be."""
        document: dict[str, Any] = json.loads(self.out)
        return document


class Avtorlm:
    """Runs `avtorlm` with a fixed environment (the AVTOR_* settings of one installation)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *arguments: str, **settings: str) -> Answer:
        """Run `avtorlm arguments...`; `settings` override AVTOR_* variables for this run only."""
        env = dict(self.env)
        env.update({f"AVTOR_{name.upper()}": value for name, value in settings.items()})
        done = subprocess.run(
            [str(AVTORLM), *arguments],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        return Answer(done.returncode, done.stdout, done.stderr)

    def ok(self, *arguments: str) -> Answer:
        """Run a command that must succeed."""
        answer = self(*arguments)
        assert answer.code == 0, f"avtorlm {' '.join(arguments)} exited {answer.code}:\n{answer.text}"
        return answer

    def json(self, *arguments: str) -> dict[str, Any]:
        """Run a reading command with --json; its answer."""
        return self.ok(*arguments, "--json").json()
