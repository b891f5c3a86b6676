"""A process of the manager started by a test: in a session of its own, its output in a log file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class ChildProcess:
    """Start it with `launch`; read its log, wait for a line, stop it (SIGTERM) or kill it."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.env = env
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"avtor-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self, argv: Sequence[str]) -> None:
        """Start `argv` from the repository's root, appending its output to the log."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(argv),
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 60.0, count: int = 1) -> None:
        """Wait until `text` appears `count` times in the log; fail with the log if it does not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()[-5000:]}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not log {text!r} within {timeout} s:\n{self.log()[-5000:]}")

    def kill(self) -> None:
        """SIGKILL it and, as an orchestrator would, everything it started."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM; SIGKILL for the whole session if it does not end in time. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # What it started and left behind (pool processes of a killed parent) ends too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def cleanup(self) -> None:
        """Stop it and remove its log."""
        self.stop()
        self.log_path.unlink(missing_ok=True)
