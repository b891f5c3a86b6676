"""The console's License tab shows the open alerts at its top, and the channels they are sent to."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.alerts import Alert, AlertKind, OpenAlert
from domain.notices import Channel, ChannelKind
from domain.services.ledger import SeatCounts
from web.pages import templates
from web.views import ChannelRow, channel_row

RAISED = datetime(2027, 3, 1, 12, tzinfo=UTC)


WEBHOOK_SECRET = "whsec-0123456789-signing-key"
SMTP_PASSWORD = "smtp-password-never-shown"


def render_license_tab(alerts: list[OpenAlert], channels: list[ChannelRow] | None = None) -> str:
    return templates.get_template("license_live.html").render(
        alerts=alerts, licenses=[], counts=SeatCounts(10, 12), channels=channels or []
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


def test_the_channels_show_kind_and_target_with_their_secrets_masked() -> None:
    webhook = Channel(
        "ops-webhook", ChannelKind.WEBHOOK, "https://hooks.example/avtor", WEBHOOK_SECRET, RAISED
    )
    options = {"host": "smtp.example", "port": 587, "starttls": True, "user": "avtor", "sender": "lm@example"}
    email = Channel("it-mail", ChannelKind.EMAIL, "ops@example", SMTP_PASSWORD, RAISED, options)
    page = render_license_tab([], [channel_row(webhook), channel_row(email)])
    assert "Alert channels" in page
    assert 'data-channel="ops-webhook"' in page and "https://hooks.example/avtor" in page
    assert "ops@example via smtp.example:587 (STARTTLS, user avtor)" in page
    assert "****ey" in page and "****wn" in page
    assert WEBHOOK_SECRET not in page and SMTP_PASSWORD not in page
    assert WEBHOOK_SECRET[:-2] not in page and SMTP_PASSWORD[:-2] not in page


def test_no_channel_says_how_to_add_one() -> None:
    page = render_license_tab([])
    assert "No channel" in page and "avtorlm notify add-webhook" in page
