"""The benchmark still runs: small counts, real processes, figures printed, no targets asserted."""

from __future__ import annotations

import subprocess
import sys

from tests.support.workers import ROOT, avtor_environment


def test_the_benchmark_runs_end_to_end_and_prints_every_figure() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--stores", "sqlite"],
        cwd=ROOT,
        env=avtor_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for figure in (
        "no-op stream consumer, pre-queued",
        "no-op stream consumer, streamed",
        "no-op Celery task, pre-queued",
        "sqlite, new editors, pre-queued",
        "sqlite, enrolled editors, pre-queued",
        "sqlite, new editors, pre-queued, 2,000 seats held",
        "sqlite, new editors, streamed",
        "sqlite, enrolled editors, streamed",
        "claim cost, sqlite",
        "latency, sqlite, new editors",
        "latency, sqlite, enrolled editors",
        "peak memory (VmHWM), sqlite enrolment consumers",
    ):
        assert figure in run.stdout, figure
    assert run.stdout.count("\ntarget ") == 8
