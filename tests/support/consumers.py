"""Real enrolment consumer processes (`python -m worker.enrolment_consumer`), started by the tests."""

from __future__ import annotations

import sys

from tests.support.child_process import ChildProcess

READY = "is ready"


class ConsumerProcess(ChildProcess):
    """One enrolment consumer as a child process in a session of its own, logging to a file."""

    def __init__(self, env: dict[str, str], name: str = "consumer", *extra: str) -> None:
        super().__init__(env, name)
        self.arguments = ["--name", name, *extra]

    def start(self, wait_for: str | None = READY, timeout: float = 60.0) -> ConsumerProcess:
        """Start it and, unless `wait_for` is None, wait until its log says it reads the stream."""
        self.launch([sys.executable, "-m", "worker.enrolment_consumer", *self.arguments])
        if wait_for is not None:
            self.wait_for_log(wait_for, timeout)
        return self


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
