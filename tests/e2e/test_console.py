"""The console and its API over real HTTP: `avtorlm serve` on uvicorn, a real store, the real license server.

Who may use it (sign-in, sessions, CSRF, slowed sign-ins, tokens), that names show as
text, and each API operation from the agreement to over the limit and back; refresh goes
through a real admin worker. The browser tests (tests/e2e/browser) tell the same story on
the screen.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import requests

from adapters.sql import SqlStore
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.services.alerts import evaluate_alerts
from domain.services.licenses import add_license
from tests.fakes import FakeLicenseService
from tests.support.cli import AVTORLM, Avtorlm
from tests.support.console import (
    ADMIN_NAME,
    ADMIN_PASSWORD,
    ConsoleProcess,
    Installation,
    add_administrator,
    installation,
)
from tests.support.license_server import key_entry
from tests.support.stores import migrated_engine
from tests.support.workers import ROOT, avtor_environment
from web import api, pages
from web.app import create_app
from web.console import Console

TIMEOUT = 30.0
FIVE, THREE = "AVTR-CON5-ACTV-0005", "AVTR-CON3-PERP-0003"
KEYS = [key_entry(FIVE, 5, expires_at="2031-06-30T23:59:59Z"), key_entry(THREE, 3, expires_at=None)]
HOSTILE_USER = "<img src=x onerror=alert(1)>"
HOSTILE_CUSTOMER = '<script>alert("customer")</script><b id="injected">Markup & Co</b>'
PUBLIC = {"/sign-in"}


class Browser:
    """A requests session that signs in through the form, as a browser does, and keeps the CSRF token."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.csrf = ""

    def sign_in(
        self, name: str = ADMIN_NAME, password: str = ADMIN_PASSWORD, **headers: str
    ) -> requests.Response:
        form = self.session.get(self.url + "/sign-in", timeout=TIMEOUT)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None, form.text
        answer = self.session.post(
            self.url + "/sign-in",
            data={"name": name, "password": password, "csrf_token": token.group(1)},
            headers=headers,
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        # A Secure cookie is not sent back over plain HTTP, as a browser would not.
        if answer.status_code == 303 and "Secure" not in answer.headers["Set-Cookie"]:
            self.csrf = self.csrf_of(self.get("/agreement").text)
        return answer

    @staticmethod
    def csrf_of(page: str) -> str:
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
        assert found is not None, page
        return found.group(1)

    def get(self, path: str, **options: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=TIMEOUT, allow_redirects=False, **options)

    def api(self, method: str, path: str, body: Any = None, csrf: bool = True) -> requests.Response:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        return self.session.request(
            method, self.url + "/api/v1" + path, json=body, headers=headers, timeout=TIMEOUT
        )

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> dict[str, Any]:
        answer = self.api(method, path, body)
        assert answer.status_code == status, answer.text
        document: dict[str, Any] = answer.json()
        return document


@pytest.fixture
def manager(store_url: str, redis_url: str) -> Iterator[Installation]:
    """A License Manager without workers on an empty store: a SQLite file, then PostgreSQL."""
    keys = [*KEYS, key_entry("AVTR-CONX-MARK-0004", 4, customer=HOSTILE_CUSTOMER)]
    with installation(store_url, redis_url, keys, workers=False) as running:
        yield running


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    url = f"sqlite:///{tmp_path / 'avtor.sqlite3'}"
    migrated_engine(url).dispose()
    return url


@pytest.fixture
def console_with(sqlite_url: str) -> Iterator[Any]:
    """`console_with(**settings)`: `avtorlm serve` alone on a SQLite store, with one administrator."""
    with ExitStack() as stack:

        def start(**settings: str) -> ConsoleProcess:
            env = avtor_environment(database_url=sqlite_url, redis_url="redis://127.0.0.1:9/0", **settings)
            add_administrator(Avtorlm(env))
            console = ConsoleProcess(env).start()
            stack.callback(console.cleanup)
            return console

        yield start


def accepted(manager: Installation) -> Browser:
    browser = Browser(manager.url)
    assert browser.sign_in().status_code == 303
    browser.ok("POST", "/agreement")
    return browser


# --- who may use it --------------------------------------------------------------------------------------


def routes() -> list[tuple[str, str]]:
    """Every route of the console's routers and app but the public ones, with made-up path parameters."""
    app = create_app(cast(Console, None))
    every = [*pages.public.routes, *pages.router.routes, *api.router.routes, *app.routes]
    found = set()
    for route in every:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if not path or not methods or path in PUBLIC or path.startswith("/static"):
            continue
        for method in methods - {"HEAD"}:
            found.add((method, re.sub(r"\{[^}]+\}", "0123456789abcdef", path)))
    return sorted(found)


def test_the_console_has_the_routes_the_tests_walk() -> None:
    paths = {path for _, path in routes()}
    assert {"/license", "/users", "/events", "/report", "/agreement", "/sign-out"} <= paths
    assert {"/api/v1/licenses", "/api/v1/users/removal", "/api/v1/openapi.json"} <= paths


def test_every_route_refuses_a_request_that_is_not_signed_in(console_with: Any) -> None:
    console = console_with()
    strangers = {
        "nobody": {},
        "a made-up session": {"Cookie": "avtor_session=made-up"},
        "a made-up token": {"Authorization": "Bearer avtor_made-up"},
    }
    for method, path in routes():
        for who, headers in strangers.items():
            answer = requests.request(
                method, console.url + path, headers=headers, allow_redirects=False, timeout=TIMEOUT
            )
            if path.startswith("/api/"):
                assert answer.status_code == 401, f"{method} {path} for {who}: {answer.status_code}"
                assert answer.json()["ok"] is False
            elif method == "GET":
                assert (answer.status_code, answer.headers.get("location")) == (303, "/sign-in"), (
                    f"{method} {path} for {who}"
                )
            else:
                assert answer.status_code == 401, f"{method} {path} for {who}: {answer.status_code}"
    assert requests.get(console.url + "/sign-in", timeout=TIMEOUT).status_code == 200
    assert requests.get(console.url + "/static/console.js", timeout=TIMEOUT).status_code == 200


def test_a_change_without_its_csrf_token_is_refused_and_changes_nothing(manager: Installation) -> None:
    browser = Browser(manager.url)
    browser.sign_in()
    refused = browser.api("POST", "/agreement", csrf=False)
    assert refused.status_code == 403 and "CSRF" in refused.json()["message"]
    form = browser.session.post(manager.url + "/agreement", data={}, allow_redirects=False, timeout=TIMEOUT)
    assert form.status_code == 403
    browser.ok("POST", "/agreement")
    for method, path, body in [
        ("POST", "/licenses", {"key": FIVE}),
        ("POST", "/users", {"name": "bob"}),
        ("POST", "/users/removal", {"names": ["bob"]}),
    ]:
        answer = browser.session.request(
            method,
            manager.url + "/api/v1" + path,
            json=body,
            headers={"X-CSRF-Token": "forged"},
            timeout=TIMEOUT,
        )
        assert answer.status_code == 403, (path, answer.text)
    assert browser.ok("GET", "/licenses")["licenses"] == []
    signed_out = browser.session.post(manager.url + "/sign-out", allow_redirects=False, timeout=TIMEOUT)
    assert signed_out.status_code == 403
    assert browser.get("/license").status_code == 200


def test_names_with_markup_show_as_text_under_a_policy_that_runs_no_inline_script(
    manager: Installation,
) -> None:
    browser = accepted(manager)
    browser.ok("POST", "/licenses", {"key": "AVTR-CONX-MARK-0004"}, status=201)
    browser.ok("POST", "/users", {"name": HOSTILE_USER}, status=201)
    for path in ("/license", "/users", f"/users?q={HOSTILE_USER}", "/events"):
        page = browser.get(path)
        assert page.status_code == 200, path
        assert "<img src=x" not in page.text and "<script>alert" not in page.text, path
        assert "<b id=" not in page.text, path
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert "<script>" not in page.text and "onclick" not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in browser.get("/users").text
    assert "&lt;script&gt;alert(&#34;customer&#34;)&lt;/script&gt;" in browser.get("/license").text


def test_the_eleventh_wrong_password_in_a_minute_is_refused_for_a_name_and_from_an_address(
    console_with: Any,
) -> None:
    console = console_with(console_trusted_proxies="127.0.0.1")
    for attempt in range(10):
        wrong = Browser(console.url).sign_in(password="wrong", **{"X-Forwarded-For": f"203.0.113.{attempt}"})
        assert wrong.status_code == 401, wrong.text
        assert "The name or the password is wrong" in wrong.text
    eleventh = Browser(console.url).sign_in(**{"X-Forwarded-For": "203.0.113.99"})
    assert eleventh.status_code == 429 and "Too many wrong passwords" in eleventh.text
    assert 1 <= int(eleventh.headers["Retry-After"]) <= 60

    for attempt in range(10):
        wrong = Browser(console.url).sign_in(
            f"nobody-{attempt}", "wrong", **{"X-Forwarded-For": "198.51.100.7"}
        )
        assert wrong.status_code == 401
    from_there = Browser(console.url).sign_in("someone", "wrong", **{"X-Forwarded-For": "198.51.100.7"})
    assert from_there.status_code == 429
    elsewhere = Browser(console.url).sign_in("someone", "wrong", **{"X-Forwarded-For": "198.51.100.8"})
    assert elsewhere.status_code == 401


def test_signing_in_gives_a_strict_cookie_and_signing_out_or_idling_ends_the_session(
    console_with: Any,
) -> None:
    console = console_with(console_trusted_proxies="127.0.0.1", console_session_timeout="4s")
    browser = Browser(console.url)
    answer = browser.sign_in()
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert browser.get("/agreement").status_code == 200
    browser.session.post(
        console.url + "/sign-out", data={"csrf_token": browser.csrf}, allow_redirects=False, timeout=TIMEOUT
    )
    assert browser.get("/agreement").headers.get("location") == "/sign-in"

    behind_https = Browser(console.url).sign_in(**{"X-Forwarded-Proto": "https"})
    assert "Secure" in behind_https.headers["Set-Cookie"]

    idle = Browser(console.url)
    idle.sign_in()
    assert idle.get("/agreement").status_code == 200
    for _ in range(3):  # polling does not keep a session alive
        assert idle.get("/api/v1/summary", headers={"X-Avtor-Poll": "1"}).status_code == 200
        time.sleep(0.8)
    time.sleep(2.5)
    assert idle.get("/agreement").headers.get("location") == "/sign-in"
    assert idle.api("GET", "/summary").status_code == 401


def test_administrators_are_added_listed_given_new_passwords_and_removed(console_with: Any) -> None:
    console = console_with()
    cli = Avtorlm(console.env)

    def admin(*arguments: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AVTORLM), "admin", *arguments],
            input=None if password is None else password + "\n",
            env=console.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert admin("add", "Bob", "--password-stdin", password="short").returncode == 1
    duplicate = admin("add", "ADA", "--password-stdin", password="another long password")
    assert duplicate.returncode == 1 and "exists already" in duplicate.stderr
    assert admin("add", "Bob", "--password-stdin", password="bob's long password").returncode == 0
    listed = cli.json("admin", "list")["administrators"]
    assert [entry["name"] for entry in listed] == ["ada", "bob"]
    assert "password" not in str(listed).replace("password_changed_at", "")

    bob = Browser(console.url)
    assert bob.sign_in("bob", "bob's long password").status_code == 303
    changed = admin("set-password", "bob", "--password-stdin", password="bob's new long password")
    assert changed.returncode == 0, changed.stderr
    assert bob.get("/agreement").headers.get("location") == "/sign-in"
    assert Browser(console.url).sign_in("bob", "bob's long password").status_code == 401
    again = Browser(console.url)
    assert again.sign_in("bob", "bob's new long password").status_code == 303

    assert admin("remove", "bob").returncode == 0
    assert again.get("/agreement").headers.get("location") == "/sign-in"
    assert Browser(console.url).sign_in("bob", "bob's new long password").status_code == 401
    assert admin("remove", "bob").returncode == 1


def test_an_api_token_works_without_a_session_until_it_is_revoked(manager: Installation) -> None:
    created = manager.cli.json("token", "create", "cms")
    secret = created["token"]
    listed = manager.cli.json("token", "list")["tokens"]
    assert [entry["name"] for entry in listed] == ["cms"]
    assert secret not in str(listed)
    bearer = {"Authorization": f"Bearer {secret}"}
    accept = requests.post(manager.url + "/api/v1/agreement", headers=bearer, timeout=TIMEOUT)
    assert accept.status_code == 200, accept.text
    added = requests.post(
        manager.url + "/api/v1/users", json={"name": "bob"}, headers=bearer, timeout=TIMEOUT
    )
    assert added.status_code == 409 and "No seat is free" in added.json()["message"]
    events = requests.get(manager.url + "/api/v1/events", headers=bearer, timeout=TIMEOUT).json()["events"]
    assert [(event["kind"], event["actor"]) for event in events] == [
        ("agreement_accepted", "cms (API token)")
    ]
    assert manager.cli.json("token", "list")["tokens"][0]["last_used_at"] is not None

    manager.cli.ok("token", "revoke", "cms")
    refused = requests.get(manager.url + "/api/v1/status", headers=bearer, timeout=TIMEOUT)
    assert refused.status_code == 401 and refused.json()["ok"] is False
    assert manager.cli("token", "revoke", "cms").code == 1


# --- the operations ----------------------------------------------------------------------------------------


def test_nothing_but_the_agreement_works_until_it_is_accepted_and_the_acceptance_names_the_administrator(
    manager: Installation,
) -> None:
    browser = Browser(manager.url)
    browser.sign_in()
    assert browser.get("/").headers["location"] == "/agreement"
    assert browser.get("/users").headers["location"] == "/agreement"
    refused = browser.api("POST", "/users", {"name": "bob"})
    assert refused.status_code == 409 and "has not been accepted" in refused.json()["message"]
    assert "AVTOR ADD-ON LICENSE AGREEMENT" in browser.get("/agreement").text
    assert browser.ok("GET", "/agreement")["accepted"] is None
    browser.session.post(
        manager.url + "/agreement", data={"csrf_token": browser.csrf}, allow_redirects=False, timeout=TIMEOUT
    )
    assert browser.ok("GET", "/agreement")["accepted"]["accepted_by"] == f"{ADMIN_NAME} (console)"
    assert manager.cli.json("eula", "show")["accepted"]["accepted_by"] == f"{ADMIN_NAME} (console)"
    assert browser.get("/").headers["location"] == "/license"


def test_licenses_and_users_from_the_first_seat_to_over_the_limit_and_back(manager: Installation) -> None:
    browser = accepted(manager)
    assert "No license yet." in browser.get("/license").text

    unknown = browser.api("POST", "/licenses", {"key": "AVTR-NONE-NONE-0000"})
    assert unknown.status_code == 409 and "The key was not added" in unknown.json()["message"]
    added = browser.ok("POST", "/licenses", {"key": FIVE.lower()}, status=201)
    assert added["message"] == "The license …0005 is added: 5 seats until 2031-06-30T23:59:59Z."
    assert (added["license"]["seats"], added["license"]["expires_at"]) == (5, "2031-06-30T23:59:59Z")
    three = browser.ok("POST", "/licenses", {"key": THREE}, status=201)["license"]
    assert FIVE not in str(browser.ok("GET", "/licenses")) and FIVE not in browser.get("/license").text

    for name in ("ann", "bob", "cid", "dan", "eve", "fay", "gus", "hal"):
        browser.ok("POST", "/users", {"name": f"sitecore\\{name}"}, status=201)
    full = browser.api("POST", "/users", {"name": "ivy"})
    assert full.status_code == 409 and "No seat is free for ivy" in full.json()["message"]
    assert "No seat is free." in browser.get("/license").text
    page = browser.ok("GET", "/users?limit=3&offset=3&search=SITECORE")
    assert (page["total"], [user["username"] for user in page["users"]]) == (
        8,
        ["sitecore\\dan", "sitecore\\eve", "sitecore\\fay"],
    )
    summary = browser.ok("GET", "/summary")

    removed = browser.ok("DELETE", f"/licenses/{three['id']}")
    assert removed["message"] == "The license …0003 is removed."
    assert (removed["seats_licensed"], removed["seats_in_use"], removed["over_limit_by"]) == (5, 8, 3)
    assert "until 3 users are removed" in removed["advice"]
    assert browser.ok("GET", "/summary")["fingerprint"] != summary["fingerprint"]
    license_tab = browser.get("/license").text
    assert (
        "Over the limit." in license_tab and "8 users hold seats but the licenses grant only 5" in license_tab
    )
    users_tab = browser.get("/users").text
    assert "3 users must be removed" in users_tab
    assert re.search(r"<dt>Allocated</dt><dd[^>]*>8</dd>", users_tab)

    back = browser.ok(
        "POST", "/users/removal", {"names": ["sitecore\\ann", "SITECORE\\Bob", "sitecore\\cid"]}
    )
    assert back["message"] == "sitecore\\ann, sitecore\\bob, sitecore\\cid no longer hold a seat."
    assert (back["seats_in_use"], back["over_limit_by"], back["seats_free"]) == (5, 0, 0)
    assert "Over the limit." not in browser.get("/license").text

    events = browser.ok("GET", "/events?kind=user_removed&kind=license_removed&since=1d")["events"]
    assert [(event["kind"], event["subject"]) for event in events] == [
        ("license_removed", "…0003"),
        ("user_removed", "sitecore\\ann"),
        ("user_removed", "sitecore\\bob"),
        ("user_removed", "sitecore\\cid"),
    ]
    assert {event["actor"] for event in events} == {f"{ADMIN_NAME} (console)"}
    assert browser.api("GET", "/events?since=yesterday").status_code == 409

    report = browser.ok("GET", "/report")
    assert [holder["username"] for holder in report["seat_holders"]][:1] == ["sitecore\\dan"]
    assert report["licenses"][0]["key"] == "…0005"
    rows = list(csv.DictReader(io.StringIO(browser.api("GET", "/report?format=csv").text)))
    assert len(rows) == 5 and {row["seats_licensed"] for row in rows} == {"5"}
    assert browser.api("DELETE", f"/licenses/{three['id']}").status_code == 404


def test_refresh_goes_through_the_admin_worker_and_says_what_changed(store_url: str, redis_url: str) -> None:
    with installation(store_url, redis_url, KEYS, workers=True) as manager:
        browser = accepted(manager)
        license = browser.ok("POST", "/licenses", {"key": FIVE}, status=201)["license"]
        manager.license_server.put_key(FIVE, seats=8)
        refreshed = browser.ok("POST", f"/licenses/{license['id']}/refresh")
        assert refreshed["message"].startswith("The license …0005 is verified: 8 seats until")
        assert "Changed: seats 5 → 8" in refreshed["message"]
        assert {"field": "seats", "before": 5, "after": 8} in refreshed["changes"]
        assert refreshed["seats_licensed"] == 8
        again = browser.ok("POST", f"/licenses/{license['id']}/refresh")
        assert again["message"].endswith("Nothing changed.")
        [event, *_] = browser.ok("GET", "/events?kind=license_refreshed")["events"]
        assert event["actor"] == f"{ADMIN_NAME} (console)"


def test_the_openapi_document_describes_the_api_to_signed_in_clients(manager: Installation) -> None:
    browser = accepted(manager)
    document = browser.ok("GET", "/openapi.json")
    assert document["info"]["title"] == "Avtor License Manager API"
    assert {"/api/v1/licenses", "/api/v1/users", "/api/v1/events", "/api/v1/report"} <= set(document["paths"])
    wrong = browser.api("POST", "/users", {"nom": "bob"})
    assert wrong.status_code == 422 and wrong.json()["ok"] is False


def test_the_open_alerts_and_the_channels_show_with_their_secrets_masked(
    console_with: Any, sqlite_url: str
) -> None:
    console = console_with()
    webhook_secret, smtp_password = "whsec-console-signing-key-0001", "smtp-console-password-0002"
    for arguments, secret in [
        (["add-webhook", "ops-webhook", "https://hooks.example/avtor", "--secret-stdin"], webhook_secret),
        (
            [
                "add-email",
                "it-mail",
                "ops@example.com",
                "--host",
                "smtp.example.com",
                "--from",
                "lm@example.com",
                "--user",
                "avtor",
                "--password-stdin",
            ],
            smtp_password,
        ),
    ]:
        added = subprocess.run(
            [str(AVTORLM), "notify", *arguments],
            input=secret + "\n",
            env=console.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert added.returncode == 0, added.stderr
    browser = Browser(console.url)
    assert browser.sign_in().status_code == 303
    browser.ok("POST", "/agreement")
    assert browser.ok("GET", "/alerts") == {"alerts": []}
    now, grace = datetime.now(UTC), timedelta(days=14)
    answer = ServiceAnswer("AVTR-CON6-SOON-0006", "active", 5, now + timedelta(days=6), now, "Example Corp")
    service = FakeLicenseService({answer.key: Verified(answer)})
    store = SqlStore(migrated_engine(sqlite_url))
    try:
        add_license(answer.key, ADMIN_NAME, store, service, now, grace, timedelta(days=3))
        assert evaluate_alerts(store, now, grace)
    finally:
        store.engine.dispose()
    [alert] = browser.ok("GET", "/alerts")["alerts"]
    assert (alert["kind"], alert["threshold"]) == ("license_expires", 7) and alert["action"]

    channels = browser.ok("GET", "/notify/channels")["channels"]
    assert [(c["name"], c["kind"], c["target"]) for c in channels] == [
        ("it-mail", "email", "ops@example.com"),
        ("ops-webhook", "webhook", "https://hooks.example/avtor"),
    ]
    assert [c["secret"] for c in channels] == ["****02", "****01"]
    page = browser.get("/license").text
    assert f'data-alert="{alert["key"]}"' in page and 'data-channel="ops-webhook"' in page
    assert "ops@example.com via smtp.example.com:587 (STARTTLS, user avtor)" in page
    for shown in (page, browser.api("GET", "/notify/channels").text, browser.api("GET", "/alerts").text):
        assert webhook_secret[:-2] not in shown and smtp_password[:-2] not in shown
