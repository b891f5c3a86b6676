"""Debian's headless Chromium driven by Selenium, and a person's way of finding things on a page.

Elements are found as a person (and a screen reader) finds them: by their role and
accessible name, as Chromium computes them, never by CSS ids or classes.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = ("chromium", "chromium-driver")
# What the screenshots and every test see: a laptop's screen.
VIEWPORT = (1280, 800)
AXE = Path(__file__).with_name("axe") / "axe.min.js"
WAIT_SECONDS = 20.0

# Headless, and quiet: this machine's network is closed, and a Chromium that phones home for
# updates, sync or components floods its log with refused connections.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--lang=en-GB",
    "--force-device-scale-factor=1",
)

# Where each role may be found: the candidates whose computed role is then checked.
_CANDIDATES = {
    "button": "button, [role=button], input[type=submit], input[type=button], input[type=reset]",
    "link": "a[href], [role=link]",
    "tab": "[role=tab], a[href]",
    "textbox": "input, textarea, [role=textbox], [role=searchbox]",
    "searchbox": "input, [role=searchbox]",
    "checkbox": "input[type=checkbox], [role=checkbox]",
    "dialog": "dialog, [role=dialog], [role=alertdialog]",
    "alert": "[role=alert], [role=status], [role=alertdialog]",
    "row": "tr, [role=row]",
    "heading": "h1, h2, h3, h4, h5, h6, [role=heading]",
}
_FIELD_ROLES = {"textbox", "searchbox", "combobox", "spinbutton"}
# A tab of the console may be drawn as a tab or as a link in its navigation.
_TAB_ROLES = {"tab", "link"}

# The candidates for an element that are drawn on the page and, when a name is wanted, have it
# somewhere among the sources of an accessible name (a loose test: Chromium's computed name decides).
_VISIBLE_SCRIPT = """
const [root, selector, name] = arguments;
const squeeze = (text) => (text || "").replace(/\\s+/g, " ").trim();
const byId = (ids) => (ids || "").split(/\\s+/).map((id) => document.getElementById(id)?.textContent || "");
const sources = (e) => [
  e.textContent, e.getAttribute("aria-label"), e.getAttribute("title"), e.getAttribute("placeholder"),
  e.value, ...byId(e.getAttribute("aria-labelledby")), ...Array.from(e.labels || [], (l) => l.textContent),
  ...Array.from(e.querySelectorAll("img[alt]"), (i) => i.alt),
].map(squeeze).join(" ");
return Array.from((root || document).querySelectorAll(selector)).filter(
  (e) => e.checkVisibility() && (name === null || sources(e).includes(name))
);
"""

T = TypeVar("T")
# Where to look for an element: the whole page (None), an element, or a function that finds one
# anew each time (a part of the page that the console re-draws as the ledger changes).
Scope = WebElement | Callable[[], WebElement] | None


def why_no_browser() -> str | None:
    """Why the browser tests cannot run here, or None when Chromium and its driver are installed."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return None
    return (
        f"The browser tests need Debian's {' and '.join(PACKAGES)} packages, and {', '.join(missing)} "
        f"is missing. Install them (as root: apt-get update && apt-get install -y {' '.join(PACKAGES)}); "
        "scripts/test does it by itself when run as root."
    )


@contextlib.contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium with a profile of its own, removed afterwards."""
    profile = Path(tempfile.mkdtemp(prefix="avtor-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size={},{}".format(*VIEWPORT)):
        options.add_argument(flag)
    # An alert left open is reported by the test that looks for it, not by the next command.
    options.set_capability("unhandledPromptBehavior", "ignore")
    service = Service(str(CHROMEDRIVER), log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_script_timeout(60)
        fix_viewport(driver)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def fix_viewport(driver: WebDriver, size: tuple[int, int] = VIEWPORT) -> None:
    """Make the page's viewport exactly `size` CSS pixels at scale 1, whatever the window's frame."""
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


class Screen:
    """The console in one browser: open pages, find what a person sees, click, type, press keys."""

    def __init__(self, driver: WebDriver, base_url: str, wait: float = WAIT_SECONDS) -> None:
        self.driver = driver
        self.base_url = base_url.rstrip("/")
        self.wait_seconds = wait

    # --- pages --------------------------------------------------------------------------------

    def open(self, path: str = "/") -> Screen:
        """Go to `path` of the console."""
        self.driver.get(self.base_url + path)
        return self

    @property
    def path(self) -> str:
        """The path of the page shown now."""
        url: str = self.driver.current_url
        return url.removeprefix(self.base_url) or "/"

    @property
    def text(self) -> str:
        """The page's visible text."""
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    # --- finding ------------------------------------------------------------------------------

    def scope(self, within: Scope) -> Any:
        """Where to look: the page, an element, or what a function finds now (it may have been re-drawn)."""
        if within is None:
            return self.driver
        return within if isinstance(within, WebElement) else within()

    def _visible(self, selector: str, within: Scope, name: str | None = None) -> list[WebElement]:
        """The elements matching `selector` that are drawn on the page, in one round trip.

        With `name`, only those whose accessible name could be `name`: every source of a name
        (text, labels, aria-label and aria-labelledby, title, value, placeholder, alt) is read
        loosely here, and the caller checks the name Chromium computes.
        """
        scope = self.scope(within)
        found: list[WebElement] = self.driver.execute_script(
            _VISIBLE_SCRIPT, None if scope is self.driver else scope, selector, name
        )
        return found

    def in_row(self, text: str) -> Callable[[], WebElement]:
        """The row that shows `text`, found anew each time it is looked in."""
        return lambda: self.row(text)

    def all(self, role: str, name: str | None = None, within: Scope = None) -> list[WebElement]:
        """Every visible element of `role` (and accessible name `name`, if given), in page order."""
        roles = _roles(role)
        found = []
        for element in self._visible(_CANDIDATES.get(role, f"[role={role}]"), within, name):
            try:
                if name is not None and not _same_name(element.accessible_name, name):
                    continue
                if element.aria_role in roles:
                    found.append(element)
            except WebDriverException as error:
                if not left_the_page(error):
                    raise
        return found

    def find(self, role: str, name: str | None = None, within: Scope = None) -> WebElement:
        """The one visible element of `role` named `name`, waiting for it to appear."""

        def one() -> WebElement | None:
            found = self.all(role, name, within)
            return found[0] if len(found) == 1 else None

        return self.until(one, lambda: self._not_found(role, name, within))

    def button(self, name: str, within: Scope = None) -> WebElement:
        return self.find("button", name, within)

    def field(self, label: str, within: Scope = None) -> WebElement:
        """The text field labelled `label`."""
        return self.find("textbox", label, within)

    def tab(self, name: str) -> WebElement:
        """One of the console's tabs: `License`, `Users`, `Events`."""
        return self.find("tab", name)

    def dialog(self) -> WebElement:
        """The dialog open now."""
        return self.find("dialog")

    def no_dialog(self) -> None:
        """Wait until no dialog is open."""
        self.until(lambda: not self.all("dialog"), lambda: f"a dialog is still open: {self.text!r}")

    def row(self, text: str, within: Scope = None) -> WebElement:
        """The table row that shows `text`."""

        def one() -> WebElement | None:
            scope = self.scope(within)
            rows: list[WebElement] = self.driver.execute_script(
                "const root = arguments[0] || document;"
                "return Array.from(root.querySelectorAll('tr, [role=row]'))"
                ".filter(row => row.checkVisibility() && row.innerText.includes(arguments[1]));",
                None if scope is self.driver else scope,
                text,
            )
            return rows[0] if len(rows) == 1 else None

        return self.until(one, lambda: f"no single row shows {text!r} on {self.path}:\n{self.text}")

    def rows(self) -> list[str]:
        """The text of every visible table row, headers included."""
        texts: list[str] = self.driver.execute_script(
            "return Array.from(document.querySelectorAll('tr, [role=row]'))"
            ".filter(row => row.checkVisibility()).map(row => row.innerText);"
        )
        return texts

    def definitions(self) -> dict[str, str]:
        """What the page's description lists say: each term (dt) and its definition (dd), as shown."""
        found = {}
        for term in self.driver.find_elements(By.XPATH, "//dt[following-sibling::dd]"):
            with unless_gone():
                if term.is_displayed():
                    found[_safe_text(term)] = _safe_text(
                        term.find_element(By.XPATH, "following-sibling::dd[1]")
                    )
        return found

    def wait_for_definition(self, term: str, value: str) -> None:
        """Wait until the term `term` of a description list shows `value`."""
        self.until(
            lambda: self.definitions().get(term) == value,
            lambda: f"{term} is not {value!r} on {self.path}: {self.definitions()}",
        )

    def alerts(self) -> str:
        """The text of every banner (alert or status) shown now."""
        return "\n".join(_safe_text(element) for element in self.all("alert"))

    # --- acting with a mouse ------------------------------------------------------------------

    def click(self, role: str, name: str, within: Scope = None) -> None:
        self.find(role, name, within).click()

    def fill(self, label: str, value: str, within: Scope = None) -> None:
        """Type `value` into the field labelled `label`, replacing what it held."""
        element = self.field(label, within)
        element.clear()
        element.send_keys(value)

    def sign_in(self, name: str, password: str) -> None:
        """Sign in on the sign-in page with the mouse and the keyboard's letters."""
        self.fill("Name", name)
        self.fill("Password", password)
        self.click("button", "Sign in")

    # --- acting with the keyboard only --------------------------------------------------------

    def focused(self) -> WebElement:
        """The element that has the keyboard's focus."""
        return self.driver.switch_to.active_element

    def press(self, *keys: str) -> None:
        """Press keys on whatever has the focus."""
        ActionChains(self.driver).send_keys(*keys).perform()

    def press_shift_tab(self) -> None:
        ActionChains(self.driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()

    def tab_to(self, name: str, role: str, within: Scope = None, limit: int = 80) -> WebElement:
        """Move the focus with Tab, or Shift+Tab when it lies beyond, to the `role` named `name`.

        Fails, naming every stop the focus made, when it does not get there: the element is
        out of the keyboard's reach, or the focus is trapped elsewhere.
        """
        target = self.find(role, name, within)
        backwards = bool(
            self.driver.execute_script(
                "const active = document.activeElement;"
                "return active !== null && active !== document.body"
                " && !!(arguments[0].compareDocumentPosition(active) & Node.DOCUMENT_POSITION_FOLLOWING);",
                target,
            )
        )
        stops: list[str] = []
        for _ in range(limit):
            element = self.focused()
            if self._is(element, role, name, within):
                return element
            element_name, element_role = _describe(element)
            stops.append(f"{element_role} {element_name!r}")
            if backwards:
                self.press_shift_tab()
            else:
                self.press(Keys.TAB)
        raise AssertionError(
            f"{'Shift+Tab' if backwards else 'Tab'} never reached the {role} {name!r} on {self.path}; "
            f"the focus went: {', '.join(stops)}"
        )

    def _is(self, element: WebElement, role: str, name: str, within: Scope) -> bool:
        """Whether `element` is the `role` named `name` within `within`."""
        try:
            if not _same_name(element.accessible_name, name) or element.aria_role not in _roles(role):
                return False
            if within is None:
                return True
            return bool(
                self.driver.execute_script(
                    "return arguments[0].contains(arguments[1])", self.scope(within), element
                )
            )
        except WebDriverException as error:
            if not left_the_page(error):
                raise
            return False

    # --- waiting ------------------------------------------------------------------------------

    def until(
        self, check: Callable[[], T | None], failure: Callable[[], str], timeout: float | None = None
    ) -> T:
        """Wait until `check()` gives something other than None or False; fail with `failure()`."""
        deadline = time.monotonic() + (self.wait_seconds if timeout is None else timeout)
        while True:
            try:
                value = check()
            except WebDriverException as error:
                if not left_the_page(error):
                    raise
                value = None
            if value is not None and value is not False:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(failure())
            time.sleep(0.05)

    def wait_for_text(self, text: str, within: Scope = None) -> str:
        """Wait until `text` shows (on the page, or within `within`); return the text there."""

        def shown() -> str | None:
            where = _safe_text(self.scope(within)) if within is not None else self.text
            return where if text in where else None

        return self.until(shown, lambda: f"{text!r} never showed on {self.path}; the page says:\n{self.text}")

    def wait_for_path(self, path: str) -> None:
        self.until(lambda: self.path.split("?")[0] == path, lambda: f"still on {self.path}, not {path}")

    def wait_until_gone(self, text: str) -> None:
        self.until(lambda: text not in self.text, lambda: f"{text!r} still shows:\n{self.text}")

    def _not_found(self, role: str, name: str | None, within: Scope) -> str:
        seen = [f"{element_role} {element_name!r}" for element_name, element_role in self._everything(within)]
        wanted = f"{role} {name!r}" if name is not None else role
        return f"no single visible {wanted} on {self.path}; the page has: {', '.join(seen)}"

    def _everything(self, within: Scope) -> list[tuple[str, str]]:
        scope = self.scope(within)
        selector = ", ".join(_CANDIDATES[role] for role in ("button", "link", "tab", "textbox", "dialog"))
        described = []
        for element in scope.find_elements(By.CSS_SELECTOR, selector):
            with unless_gone():
                if element.is_displayed():
                    described.append(_describe(element))
        return described

    # --- checks every page gets -----------------------------------------------------------------

    def alert_opened(self) -> str | None:
        """The text of a JavaScript alert the page opened, or None."""
        try:
            return str(self.driver.switch_to.alert.text)
        except NoAlertPresentException:
            return None

    def accessibility_violations(self, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
        """axe-core's violations of the page as shown now with one of `impacts`, one line each."""
        if not self.driver.execute_script("return typeof window.axe === 'object'"):
            self.driver.execute_script(AXE.read_text(encoding="utf-8"))
        found: dict[str, Any] = self.driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            axe.run(document, {resultTypes: ['violations']})
              .then(results => done({violations: results.violations.map(v => ({
                  id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.map(n => n.target.join(' ') + ' ' + (n.failureSummary || '')),
              }))}))
              .catch(error => done({error: String(error)}));
            """
        )
        if "error" in found:
            raise AssertionError(f"axe-core failed on {self.path}: {found['error']}")
        return [
            f"{self.path}: {v['impact']} {v['id']} ({v['help']}): {'; '.join(v['nodes'])}"
            for v in found["violations"]
            if v["impact"] in impacts
        ]

    def screenshot(self, path: Path) -> None:
        """A PNG of the viewport (VIEWPORT pixels) as it is now."""
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False}
        )
        path.write_bytes(base64.b64decode(shot["data"]))


def left_the_page(error: WebDriverException) -> bool:
    """Whether `error` says an element found a moment ago is no longer on the page (it was re-drawn,
    or the browser went to another page); Chromium tells this in more than one way."""
    return isinstance(error, StaleElementReferenceException) or "does not belong to the document" in str(
        error.msg
    )


@contextlib.contextmanager
def unless_gone() -> Iterator[None]:
    """Skip the block's rest when the element it works on has left the page."""
    try:
        yield
    except WebDriverException as error:
        if not left_the_page(error):
            raise


def _roles(role: str) -> set[str]:
    if role == "textbox":
        return _FIELD_ROLES
    if role == "tab":
        return _TAB_ROLES
    if role == "alert":
        return {"alert", "status", "alertdialog"}
    if role == "dialog":
        return {"dialog", "alertdialog"}
    if role == "row":
        return {"row", "LayoutTableRow"}
    return {role}


def _same_name(found: str, wanted: str) -> bool:
    return " ".join(found.split()) == wanted


def _describe(element: WebElement) -> tuple[str, str]:
    """The accessible name and role of `element`."""
    try:
        return str(element.accessible_name), str(element.aria_role)
    except WebDriverException as error:
        if not left_the_page(error):
            raise
        return "", "gone"


def _safe_text(element: WebElement) -> str:
    try:
        return str(element.text)
    except WebDriverException as error:
        if not left_the_page(error):
            raise
        return ""
