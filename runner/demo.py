"""`scripts/demo`: the whole story, told step by step against the system `scripts/run` started.

The administrator's steps run the real `avtorlm` commands, editors' starts go
through Redis with the host client (as the CMS sends them), and the vendor's
change goes to the development license server's /_dev switch. Each step checks
its outcome: the demo stops with exit code 1 where the system does not behave
as the story says.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from config import Settings, SettingsError, load_settings
from domain.licenses import masked_key
from domain.moments import format_duration, parse_instant, utc_now
from host_client import Decision, EnrolmentClient, EnrolmentTimeout
from runner.redis_server import answers_ping

AVTORLM = str(Path(sys.executable).with_name("avtorlm"))
ADMINISTRATOR = "Demo Administrator"
FIVE, THREE = "AVTR-DEMO-ACTV-SEAT-0005", "AVTR-DEMO-PERP-SEAT-0003"
EDITOR = "demo\\editor-{:02d}"
MOST_EDITORS = 100
DECISION_SECONDS = 30.0
# Watching the schedule is worth it only when the next check is this close.
LONGEST_SCHEDULE_WAIT = timedelta(minutes=2)


class OffScript(Exception):
    """The system did not do what the story says it does."""


def main(argv: Sequence[str] | None = None) -> int:
    """Tell the story; 0 if every step went as told, 1 otherwise."""
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        Demo(settings).tell()
    except OffScript as error:
        print(f"\nThe demo stopped: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


class Demo:
    """The seed story against one running system."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Editors' starts go through the hosts' Redis user (AVTOR_HOST_REDIS_URL in run.env).
        self.editors = EnrolmentClient()
        self.vendor = requests.Session()

    def tell(self) -> None:
        """Every step, in order."""
        self._check_running()
        self._clear_earlier_demo()
        self.accept_the_agreement()
        self.add_licenses()
        last = self.start_editors_until_refused()
        self.remove_a_license(last)
        self.remove_users()
        self.vendor_adds_seats(last)
        self.schedule_revalidates()
        _step(
            "The demo is over. Look around: avtorlm status, avtorlm user list, avtorlm events, avtorlm report"
        )

    # --- the story ------------------------------------------------------------------------------

    def accept_the_agreement(self) -> None:
        """1. The administrator accepts the license agreement."""
        _step("1. The administrator accepts the license agreement (nothing can be added before).")
        self.admin("eula", "accept", "--by", ADMINISTRATOR)

    def add_licenses(self) -> None:
        """2. Two licenses are added; the license service confirms their seats and expiry."""
        _step("2. The administrator adds two licenses; the license service confirms their seats and expiry.")
        for key in (FIVE, THREE):
            self.admin("license", "add", key)
        self.admin("status")

    def start_editors_until_refused(self) -> int:
        """3. Editors start Avtor until the seats run out; the next one is refused with the message."""
        status = self.admin_json("status")
        others = status["seats_in_use"]
        if others:
            print(
                f"   {_users(others)} already {'holds a seat' if others == 1 else 'hold seats'} "
                "(added before the demo); the demo counts from there."
            )
        if status["seats_free"] == 0:
            raise OffScript(
                f"the demo's licenses grant {status['seats_licensed']} seats and {_users(others)} already "
                "hold them, so no editor of the demo can get one. Remove some users (`avtorlm user list`, "
                "`avtorlm user remove NAME`) or run the demo on a new data folder "
                "(AVTOR_DATA_DIR=data-demo scripts/run)."
            )
        _step("3. Editors start Avtor (through Redis, as the CMS sends it) until the seats run out.")
        for number in range(1, MOST_EDITORS + 1):
            decision = self.start(EDITOR.format(number))
            if not decision["allowed"]:
                _expect_outcome(EDITOR.format(number), "refused for want of a seat", "no_seats", decision)
                return number - 1
        raise OffScript(
            f"{MOST_EDITORS} editors started and none was refused: the licenses grant more seats than the "
            "demo expects."
        )

    def remove_a_license(self, seated: int) -> None:
        """4. Removing a license leaves more users than seats: nobody may use Avtor."""
        _step("4. The administrator removes the 3-seat license: more users hold seats than licensed.")
        self.admin("license", "remove", THREE)
        status = self.admin_json("status")
        _expect(
            status["over_limit_by"] > 0,
            f"more users should hold seats than licensed, but {status['seats_in_use']} hold seats and "
            f"{status['seats_licensed']} are licensed",
        )
        decision = self.start(EDITOR.format(1))
        _expect_outcome(EDITOR.format(1), "refused because users are over the limit", "over_limit", decision)
        self.seated = seated

    def remove_users(self) -> None:
        """5. Removing users brings the count back within the seats: allowed again."""
        status = self.admin_json("status")
        excess = status["over_limit_by"]
        if excess > self.seated:
            raise OffScript(
                f"{_users(excess)} must be removed to get back under the limit, but the demo seated only "
                f"{self.seated} and does not remove users it did not add. Remove some yourself "
                "(`avtorlm user list`, `avtorlm user remove NAME`) or run the demo on a new data folder."
            )
        _step(f"5. The administrator removes {_users(excess)}; everyone left may use Avtor again.")
        for number in range(self.seated, self.seated - excess, -1):
            self.admin("user", "remove", EDITOR.format(number))
        holders = [user["username"] for user in self.admin_json("user", "list", "--all")["users"]]
        _expect(bool(holders), "someone should still hold a seat, but nobody does")
        remaining = EDITOR.format(1) if self.seated > excess else holders[0]
        decision = self.start(remaining)
        _expect_outcome(remaining, "allowed again", "already_enrolled", decision)

    def vendor_adds_seats(self, seated: int) -> None:
        """6. The vendor adds seats to a license; a refresh through the workers picks them up."""
        _step("6. The vendor adds 3 seats to the 5-seat license; a refresh picks them up.")
        key = self.vendor_key(FIVE)
        self.vendor_put(FIVE, seats=key["seats"] + 3)
        print(
            f"   The vendor's service now grants {key['seats'] + 3} seats for the license {masked_key(FIVE)}."
        )
        self.admin("license", "refresh", FIVE)
        decision = self.start(EDITOR.format(seated + 1))
        _expect_outcome(EDITOR.format(seated + 1), "given one of the new seats", "granted", decision)

    def schedule_revalidates(self) -> None:
        """7. Beat re-validates the license on its own: its last verified time moves."""
        _step("7. The schedule re-validates the license on its own.")
        license = self.license(FIVE)
        verified, due = license["last_verified_at"], parse_instant(license["next_revalidation_at"])
        print(f"   last verified {verified}; next scheduled check {license['next_revalidation_at']}")
        if due - utc_now() > LONGEST_SCHEDULE_WAIT:
            print(
                f"   That is more than {format_duration(LONGEST_SCHEDULE_WAIT)} away "
                f"(AVTOR_REVALIDATE_EVERY={format_duration(self.settings.revalidate_every)}). "
                "Start `scripts/run --demo-schedule` to watch it happen within seconds."
            )
            return
        deadline = time.monotonic() + (due - utc_now()).total_seconds() + 60
        while license["last_verified_at"] == verified:
            if time.monotonic() > deadline:
                raise OffScript(
                    f"beat did not re-validate {FIVE[:-4]}… a minute after it was due: see data/logs"
                )
            time.sleep(1)
            license = self.license(FIVE)
        print(f"   last verified moved to {license['last_verified_at']}, by the schedule:")
        self.admin("events", "--kind", "license_refreshed", "--limit", "3")

    # --- the administrator, the editors, the vendor ---------------------------------------------

    def admin(self, *arguments: str) -> str:
        """Run an avtorlm command and show it with its output; it must succeed."""
        print(f"   $ avtorlm {' '.join(_quoted(argument) for argument in arguments)}", flush=True)
        done = subprocess.run([AVTORLM, *arguments], capture_output=True, text=True, check=False)  # noqa: S603
        for line in (done.stdout + done.stderr).rstrip().splitlines():
            print(f"     {line}")
        _expect(done.returncode == 0, f"`avtorlm {' '.join(arguments)}` exited with {done.returncode}")
        return done.stdout

    def admin_json(self, *arguments: str) -> dict[str, Any]:
        """Run a reading avtorlm command quietly; its JSON answer."""
        done = subprocess.run([AVTORLM, *arguments, "--json"], capture_output=True, text=True, check=False)  # noqa: S603
        _expect(
            done.returncode == 0, f"`avtorlm {' '.join(arguments)} --json` failed: {done.stdout}{done.stderr}"
        )
        document: dict[str, Any] = json.loads(done.stdout)
        return document

    def license(self, key: str) -> dict[str, Any]:
        """The license as `avtorlm license list --json` shows it."""
        for license in self.admin_json("license", "list", "--show-keys")["licenses"]:
            if license["key"] == key:
                return dict(license)
        raise OffScript(f"the license {key[:-4]}… is not in the list")

    def start(self, editor: str) -> Decision:
        """An editor starts Avtor: the host's message through Redis, and the decision."""
        try:
            decision = self.editors.enrol(editor, request_id=f"demo-{uuid.uuid4()}", timeout=DECISION_SECONDS)
        except EnrolmentTimeout as error:
            raise OffScript(str(error)) from None
        verdict = decision["outcome"] if decision["allowed"] else f"REFUSED ({decision['outcome']})"
        print(f"   {editor} starts Avtor: {verdict}. {decision['message']}", flush=True)
        return decision

    def vendor_key(self, key: str) -> dict[str, Any]:
        """The key as the development license server knows it."""
        return self._vendor("GET", key)

    def vendor_put(self, key: str, **fields: Any) -> dict[str, Any]:
        """Change a key on the development license server, as the vendor would."""
        return self._vendor("PUT", key, fields)

    def _vendor(self, method: str, key: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.settings.license_server_url}/_dev/keys/{key}"
        try:
            response = self.vendor.request(method, url, json=fields, timeout=(2.0, 10.0))
            response.raise_for_status()
        except requests.RequestException as error:
            raise OffScript(
                f"the development license server at {self.settings.license_server_url} did not take "
                f"{method} /_dev/keys ({error}): the demo needs the one scripts/run starts"
            ) from None
        document: dict[str, Any] = response.json()
        return document

    # --- before the story -----------------------------------------------------------------------

    def _check_running(self) -> None:
        where = str(self.settings.redis_url)
        if not answers_ping(self.settings.redis_url.get_secret_value()):
            raise OffScript(
                f"nothing answers at Redis {where}. Start the system with `scripts/run` in another terminal "
                "first; the demo finds it through data/run.env."
            )
        print(
            f"The Avtor License Manager demo, against Redis {where} and {self.settings.license_server_url}."
        )

    def _clear_earlier_demo(self) -> None:
        """Take back what an earlier demo left, so the story starts from the same place."""
        self.vendor_put(FIVE, seats=5)
        leftovers = [
            user["username"]
            for user in self.admin_json("user", "list", "--all")["users"]
            if user["username"].startswith("demo\\editor-")
        ]
        keys = [item["key"] for item in self.admin_json("license", "list", "--show-keys")["licenses"]]
        if not leftovers and not {FIVE, THREE} & set(keys):
            return
        _step("0. Clearing what an earlier demo left.")
        for key in (FIVE, THREE):
            if key in keys:
                self.admin("license", "remove", key)
        for username in leftovers:
            self.admin("user", "remove", username)


def _step(title: str) -> None:
    print(f"\n{title}", flush=True)


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise OffScript(problem)


def _expect_outcome(editor: str, expected: str, outcome: str, decision: Decision) -> None:
    """Stop unless the decision's outcome is `outcome`, saying in words what was expected and found."""
    if decision["outcome"] != outcome:
        raise OffScript(
            f"{editor} should have been {expected} ({outcome}), but the manager answered "
            f"{decision['outcome']}: \"{decision['message']}\""
        )


def _users(count: int) -> str:
    return "1 user" if count == 1 else f"{count} users"


def _quoted(argument: str) -> str:
    plain = all(character.isalnum() or character in "-_.=/@…" for character in argument)
    return argument if plain else "'" + argument.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    sys.exit(main())
