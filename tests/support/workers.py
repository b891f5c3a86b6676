"""Real Celery worker and beat processes, started by the tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.support.child_process import ROOT, ChildProcess

__all__ = ["ROOT", "CeleryProcess", "avtor_environment"]


def avtor_environment(**settings: str) -> dict[str, str]:
    """The environment of a manager process: this one's, without stray AVTOR_ settings, plus `settings`.

    Development mode is on unless `settings` say otherwise (`development_mode="0"` with a generated
    vendor key pair): the development license server signs with the development key.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("AVTOR_")}
    env["AVTOR_DEVELOPMENT_MODE"] = "1"
    env.update({f"AVTOR_{name.upper()}": value for name, value in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    return env


class CeleryProcess(ChildProcess):
    """`celery -A worker worker|beat` as a child process with its own log file."""

    def __init__(
        self, env: dict[str, str], *arguments: str, name: str = "worker", app: str = "worker"
    ) -> None:
        super().__init__(env, name)
        self.arguments = list(arguments)
        self.app = app

    @classmethod
    def worker(
        cls,
        env: dict[str, str],
        name: str,
        queues: str = "avtor.enrolment,avtor.admin",
        concurrency: int | None = None,
        *extra: str,
        app: str = "worker",
        loglevel: str = "INFO",
        pool: str | None = None,
    ) -> CeleryProcess:
        """A worker node named `name` on `queues`; pool and concurrency default to the app's settings."""
        options = ["-c", str(concurrency)] if concurrency else []
        if pool:
            # Celery's --pool cannot choose prefork once the app names a pool: the setting can.
            env = {**env, "AVTOR_WORKER_POOL": pool}
        return cls(
            env,
            "worker",
            "-Q",
            queues,
            *options,
            "-n",
            f"{name}@%h",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            *extra,
            name=name,
            app=app,
        )

    @classmethod
    def beat(cls, env: dict[str, str], schedule_dir: Path, *extra: str) -> CeleryProcess:
        """A beat process keeping its schedule file in `schedule_dir`."""
        return cls(
            env,
            "beat",
            "--loglevel=INFO",
            "-s",
            str(schedule_dir / "celerybeat-schedule"),
            *extra,
            name="beat",
        )

    def start(self, wait_for: str | None = "ready.", timeout: float = 60.0) -> CeleryProcess:
        self.launch([sys.executable, "-m", "celery", "-A", self.app, *self.arguments])
        if wait_for is not None:
            self.wait_for_log(wait_for, timeout)
        return self

    def pool_pids(self) -> list[int]:
        """The pool processes (children) of this worker."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []
