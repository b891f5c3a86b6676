"""Real enrolment consumer processes (`python -m worker.enrolment_consumer`), started by the tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.workers import ROOT

READY = "is ready"


class ConsumerProcess:
    """One enrolment consumer as a child process in a session of its own, logging to a file."""

    def __init__(self, env: dict[str, str], name: str = "consumer", *extra: str) -> None:
        self.env = env
        self.name = name
        self.arguments = ["--name", name, *extra]
        self.log_path = Path(tempfile.mkstemp(prefix=f"avtor-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait_for: str | None = READY, timeout: float = 60.0) -> ConsumerProcess:
        """Start it and, unless `wait_for` is None, wait until its log says it reads the stream."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker.enrolment_consumer", *self.arguments],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait_for is not None:
            self.wait_for_log(wait_for, timeout)
        return self

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
        """SIGKILL it and anything it started, as an orchestrator would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (it finishes the batch in hand); SIGKILL if it does not end in time. The exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def cleanup(self) -> None:
        """Stop it and remove its log."""
        self.stop()
        self.log_path.unlink(missing_ok=True)


class Consumers:
    """The consumer processes of one test: `start(name)` each, `stop_all()` at its end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[ConsumerProcess] = []

    def start(self, name: str, *extra: str, timeout: float = 60.0) -> ConsumerProcess:
        process = ConsumerProcess(self.env, name, *extra)
        self.processes.append(process)
        return process.start(timeout=timeout)

    def stop_all(self) -> None:
        for process in self.processes:
            process.cleanup()

    def logs(self) -> str:
        """The end of every consumer's log, for a failing test's message."""
        return "\n".join(f"--- {p.name} ---\n{p.log()[-3000:]}" for p in self.processes)

    def __enter__(self) -> Consumers:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()
