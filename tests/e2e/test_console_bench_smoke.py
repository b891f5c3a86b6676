"""The Users-tab benchmark still runs: small counts, real consoles, figures printed, no target checked."""

from __future__ import annotations

import subprocess
import sys

from tests.support.workers import ROOT, avtor_environment


def test_the_users_tab_benchmark_runs_end_to_end_and_prints_its_figures() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.console_users", "--quick", "--stores", "sqlite", "--large", "300"],
        cwd=ROOT,
        env=avtor_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "sqlite, Users tab first page: 100 users " in run.stdout
    assert "300 users " in run.stdout and "ratio " in run.stdout
    assert "sqlite, Users tab search: " in run.stdout
    assert "target sqlite: ratio at most 1.5" in run.stdout
