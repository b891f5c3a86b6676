"""Which processes a test started, read from /proc, to prove that none is left running."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    """One process as /proc shows it; (pid, started) names it even if the pid is reused later."""

    pid: int
    parent: int
    session: int
    started: int
    command: str


def process(pid: int) -> ProcessInfo | None:
    """The process `pid`, or None if it does not exist (or is a zombie about to go)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        command = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name in parentheses may contain spaces: the fields after it are fixed.
    fields = stat.rpartition(")")[2].split()
    if fields[0] == "Z":
        return None
    return ProcessInfo(pid, int(fields[1]), int(fields[3]), int(fields[19]), command.strip())


def every_process() -> list[ProcessInfo]:
    """All processes alive now."""
    found = (process(int(entry.name)) for entry in PROC.iterdir() if entry.name.isdigit())
    return [info for info in found if info is not None]


def descendants(pid: int) -> list[ProcessInfo]:
    """Every process below `pid`: its children, their children, and so on."""
    alive = every_process()
    found: list[ProcessInfo] = []
    parents = {pid}
    while True:
        new = [info for info in alive if info.parent in parents and info not in found]
        if not new:
            return found
        found += new
        parents = {info.pid for info in new}


def still_running(known: list[ProcessInfo]) -> list[ProcessInfo]:
    """Those of `known` that still run, and any process in one of their sessions."""
    sessions = {info.session for info in known}
    alive = every_process()
    return [
        info
        for info in alive
        if any(info.pid == old.pid and info.started == old.started for old in known)
        or info.session in sessions
    ]


def kill_all(known: list[ProcessInfo]) -> None:
    """SIGKILL whatever of `known` still runs (a failed test must not leave processes behind)."""
    for info in still_running(known):
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGKILL)
