"""The console's License tab shows the open alerts at its top."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.alerts import Alert, AlertKind, OpenAlert
from domain.services.ledger import SeatCounts
from web.pages import templates

RAISED = datetime(2027, 3, 1, 12, tzinfo=UTC)


def render_license_tab(alerts: list[OpenAlert]) -> str:
    return templates.get_template("license_live.html").render(
        alerts=alerts, licenses=[], counts=SeatCounts(10, 12)
    )


def test_open_alerts_come_first_with_what_to_do_and_since_when() -> None:
    alert = Alert(AlertKind.OVER_LIMIT, "seats", 2, "12 users <b>hold</b> seats.", "Remove 2 users.")
    page = render_license_tab([OpenAlert(alert, RAISED)])
    assert page.lstrip().startswith('<section class="banner banner-warning alerts"')
    assert 'data-alert="over_limit:seats"' in page and "Remove 2 users." in page
    assert "12 users &lt;b&gt;hold&lt;/b&gt; seats." in page
    assert 'datetime="2027-03-01T12:00:00Z"' in page


def test_no_alert_no_section() -> None:
    assert "Open alerts" not in render_license_tab([])
