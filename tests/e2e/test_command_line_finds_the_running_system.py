"""Without AVTOR_REDIS_URL, avtorlm works on the system scripts/run runs in its data folder, and says so."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.workers import ROOT, avtor_environment

AVTORLM = str(ROOT / ".venv" / "bin" / "avtorlm")


def test_the_command_line_reads_the_running_system_s_run_env_and_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # What scripts/run writes while it runs: here, a Redis nobody listens on, so the answer names it.
    (data / "run.env").write_text(
        "export AVTOR_REDIS_URL=redis://avtor-admin:pw@127.0.0.1:9/0\nexport CONSOLE_URL=http://x/\n",
        encoding="utf-8",
    )
    env = avtor_environment()
    env.pop("AVTOR_REDIS_URL", None)
    done = subprocess.run(
        [AVTORLM, "enrolment"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "Using the system that scripts/run runs, as data/run.env describes it" in done.stderr
    assert "redis://avtor-admin:***@127.0.0.1:9/0" in done.stderr


def test_a_redis_named_in_the_environment_wins_over_run_env(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "run.env").write_text(
        "export AVTOR_REDIS_URL=redis://127.0.0.1:9/0\n", encoding="utf-8"
    )
    env = avtor_environment(redis_url="redis://127.0.0.1:8/0")
    done = subprocess.run(
        [AVTORLM, "enrolment"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert "run.env" not in done.stderr
    assert "127.0.0.1:8/0" in done.stderr
