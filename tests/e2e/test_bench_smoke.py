"""The benchmark still runs: small counts, real workers, no targets asserted."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.workers import ROOT, avtor_environment


def test_the_benchmark_runs_end_to_end_and_prints_every_figure() -> None:
    env = avtor_environment()
    # The benchmark finds PostgreSQL as the tests do: the configured one, or one it starts.
    if "AVTOR_TEST_DATABASE_URL" in os.environ:
        env["AVTOR_TEST_DATABASE_URL"] = os.environ["AVTOR_TEST_DATABASE_URL"]
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--requests", "60", "--nodes", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for store in ("postgresql", "sqlite"):
        assert f"\n{store}: 1 worker process(es)" in run.stdout
    for figure in (
        "baseline, pre-queued",
        "new editors, pre-queued",
        "enrolled editors, pre-queued",
        "new editors, large ledger",
        "baseline, streamed",
        "claim cost",
        "latency, new editors",
        "latency, enrolled editors",
        "peak memory of a worker process",
    ):
        assert run.stdout.count(figure) == 2, figure
