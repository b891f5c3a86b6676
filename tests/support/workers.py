"""Real Celery worker and beat processes, started by the tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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


class CeleryProcess:
    """`celery -A worker worker|beat` as a child process with its own log file."""

    def __init__(
        self, env: dict[str, str], *arguments: str, name: str = "worker", app: str = "worker"
    ) -> None:
        self.env = env
        self.arguments = list(arguments)
        self.name = name
        self.app = app
        self.log_path = Path(tempfile.mkstemp(prefix=f"avtor-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

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
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", self.app, *self.arguments],
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

    def pool_pids(self) -> list[int]:
        """The pool processes (children) of this worker."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def kill(self) -> None:
        """SIGKILL the main process and, as an orchestrator would, everything it started."""
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """Warm shutdown (SIGTERM); SIGKILL if it does not end in time. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        # Pool processes left behind by a killed parent are ended too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def cleanup(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)
