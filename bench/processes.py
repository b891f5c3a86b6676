"""The processes a benchmark measures: pausing and resuming them; their CPU time and peak memory (/proc)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from tests.support.workers import ROOT


def pause(pid: int) -> None:
    """Stop the process (SIGSTOP) so that entries pile up unread."""
    os.kill(pid, signal.SIGSTOP)


def resume(pid: int) -> None:
    """Let a paused process go on (SIGCONT)."""
    os.kill(pid, signal.SIGCONT)


def cpu_seconds(pids: Iterable[int]) -> float:
    """User and system CPU time these processes have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def peak_memory_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class ModuleProcess:
    """`python -m MODULE ARGS` as a child process in a session of its own, logging to a file."""

    def __init__(self, module: str, *arguments: str, env: dict[str, str] | None = None) -> None:
        self.command = [sys.executable, "-m", module, *arguments]
        self.env = env
        self.log_path = Path(tempfile.mkstemp(prefix=f"avtor-bench-{module}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait_for: str, timeout: float = 60.0) -> ModuleProcess:
        """Start it and wait until its log shows `wait_for`."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while wait_for not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(self.command)} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cleanup(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and remove its log."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)
                self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
        self.log_path.unlink(missing_ok=True)
