"""The processes `scripts/run` starts: each in a process group of its own, with its own log file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.1


class ChildFailed(Exception):
    """A child process did not start, or stopped when it should not have; the message says which."""


class Child:
    """One process of the system: started, watched and stopped as a whole process group."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log_path: Path, stop_seconds: float = 30.0
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.stop_seconds = stop_seconds
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        """Start the process; its output goes to its log file, which starts empty."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # A session of its own: a Ctrl-C in the terminal reaches only the supervisor, which
            # then stops the children in order, and a child's own children stay in its group.
            self.process = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        """The process id, which is also its process group's id."""
        if self.process is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self.process.pid

    def exit_code(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return None if self.process is None else self.process.poll()

    def wait_until(self, ready: Callable[[], bool], timeout: float, stopping: Callable[[], bool]) -> None:
        """Wait until `ready()`; raise ChildFailed if the process ends or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while not ready():
            if stopping():
                return
            code = self.exit_code()
            if code is not None:
                raise ChildFailed(
                    f"The {self.name} stopped while starting (exit code {code}).\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise ChildFailed(f"The {self.name} did not start within {timeout:g} s.\n{self.tail()}")
            time.sleep(POLL_SECONDS)

    def log_text(self) -> str:
        """Everything the process wrote since it started."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 20) -> str:
        """The last lines of its log, to show why it stopped."""
        last = self.log_text().splitlines()[-lines:]
        return f"Last lines of {self.log_path}:\n" + "\n".join(f"  {line}" for line in last)

    def stop(self, hurry: Callable[[], bool]) -> None:
        """SIGTERM the process group, SIGKILL it if it outlasts `stop_seconds` or `hurry()`; reap it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            deadline = time.monotonic() + self.stop_seconds
            while self.process.poll() is None and time.monotonic() < deadline and not hurry():
                time.sleep(POLL_SECONDS)
        # Whatever the main process left behind in its group (a pool process) goes too.
        self._signal(signal.SIGKILL)
        self.process.wait()

    def _signal(self, number: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, number)
