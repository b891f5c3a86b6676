"""Thousands of editor starts through Redis to real worker processes."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from tests.e2e.conftest import Fleet
from tests.support.ledger import seat_holders, seed_licenses
from tests.support.publishing import check_decisions_against_store, collect_decisions, publish_starts

PUBLISHERS = 2
REQUESTS_PER_PUBLISHER = 2500
EDITORS = 500
SEATS = 100


def test_five_thousand_starts_grant_exactly_the_licensed_seats(
    fleet: Fleet, store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-LOAD-0001": 60, "AVTR-LOAD-0002": 40})
    # Four worker nodes race on the store: two of the default settings (a thread pool of
    # 24 each, where claims meet in batches) and two with a process pool of two (one
    # claim a transaction), so both ways of running tasks claim from the same seats.
    for name in ("load-a", "load-b"):
        fleet.worker(name)
    for name in ("load-c", "load-d"):
        fleet.worker(name, concurrency=2, pool="prefork")

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PUBLISHERS, mp_context=context) as pool:
        batches = pool.map(
            publish_starts,
            [redis_url] * PUBLISHERS,
            range(PUBLISHERS),
            [REQUESTS_PER_PUBLISHER] * PUBLISHERS,
            [EDITORS] * PUBLISHERS,
        )
        sent = [start for batch in batches for start in batch]
    assert len(sent) == PUBLISHERS * REQUESTS_PER_PUBLISHER

    results = collect_decisions(redis_url, [task_id for task_id, _, _ in sent], timeout=240)
    assert len(results) == len(sent), f"{len(sent) - len(results)} requests unanswered\n{fleet.logs()}"
    assert {result["status"] for result in results.values()} == {"SUCCESS"}

    holders, counted, rows = seat_holders(store_url)
    assert len(holders) == counted == rows == SEATS
    tally = check_decisions_against_store(sent, results, holders)
    assert tally["granted"] == SEATS
