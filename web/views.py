"""What the console shows of the ledger: licenses by id, the banner, removal warnings, refresh changes.

The JSON shapes are those of `avtorlm ... --json`, so scripts read the API as they read the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.sql import SqlStore
from adapters.sql.notices import SqlNotices
from cli.notify import channel_where
from domain.licenses import masked_key
from domain.notices import Channel, masked_secret
from domain.ports import Store
from domain.seat_policy import OverLimitPolicy
from domain.services.ledger import SeatCounts
from domain.services.licenses import LicenseView
from domain.services.status import LedgerStatus
from tasks.messages import agreement_message, counts_message, license_message

# The fields a refresh may change, as the administrator reads them.
CHANGING_FIELDS = {
    "status": "status",
    "seats": "seats",
    "seats_granted": "seats granted",
    "expires_at": "expiry",
    "customer": "customer",
    "last_error": "last problem",
}


@dataclass(frozen=True)
class Banner:
    """A sentence at the top of the License and Users tabs saying what to do."""

    level: str  # "danger" or "warning"
    title: str
    text: str


@dataclass(frozen=True)
class ChannelRow:
    """A notice channel as the License tab lists it: never its secret in full."""

    name: str
    kind: str
    where: str
    secret: str


def notice_channels(store: Store) -> list[Channel]:
    """The channels alerts are sent to, by name (as `avtorlm notify list` reads them)."""
    return SqlNotices(store.engine).channels() if isinstance(store, SqlStore) else []


def channel_row(channel: Channel) -> ChannelRow:
    """A channel for the License tab: kind, where notices go, the secret masked."""
    return ChannelRow(channel.name, channel.kind.value, channel_where(channel), masked_secret(channel.secret))


def license_document(view: LicenseView) -> dict[str, Any]:
    """One license as JSON, key masked, with its id for the API's URLs (never the key)."""
    return license_message(view)


def status_document(status: LedgerStatus) -> dict[str, Any]:
    """Counts, licenses and the agreement, with the banner's words."""
    banner = banner_for(status.counts, len(status.licenses), status.policy)
    return {
        **counts_message(status.counts),
        "licenses": [license_document(view) for view in status.licenses],
        "agreement": agreement_message(status.agreement),
        "advice": None if banner is None else f"{banner.title} {banner.text}",
        "over_limit_policy": status.policy.value,
        "refused": [seat.username for seat in status.refused],
    }


def banner_for(
    counts: SeatCounts, licenses: int, policy: OverLimitPolicy = OverLimitPolicy.BLOCK_ALL
) -> Banner | None:
    """What the administrator must do now, if anything."""
    if counts.over_limit_by:
        users = _users(counts.over_limit_by)
        block_all = policy is OverLimitPolicy.BLOCK_ALL
        who = "nobody may use Avtor" if block_all else "the newest of them are refused"
        return Banner(
            "danger",
            "Over the limit.",
            f"{_users(counts.in_use)} hold seats but the licenses grant only {counts.licensed}: {who} "
            f"until {users} {'is' if counts.over_limit_by == 1 else 'are'} removed on the Users "
            "tab or a license is added with Add License.",
        )
    if licenses == 0:
        return Banner(
            "warning", "No license yet.", "Add one with Add License: until then no editor gets a seat."
        )
    if counts.free == 0:
        return Banner(
            "warning",
            "No seat is free.",
            f"All {counts.licensed} seats are in use: editors without a seat are refused until a license "
            "is added with Add License or users are removed on the Users tab.",
        )
    return None


def removal_warning(view: LicenseView, counts: SeatCounts) -> str:
    """What removing a license does, said before it is done."""
    left = counts.licensed - view.seats_granted
    goes = f"Remove the license {masked_key(view.key)}? Its {_seats(view.seats_granted)} go at once"
    if counts.in_use > left:
        over = counts.in_use - left
        return (
            f"{goes}: {_users(counts.in_use)} will then hold seats with {_seats(left)} licensed, "
            f"{over} over the limit, and nobody may use Avtor until {_users(over)} "
            f"{'is' if over == 1 else 'are'} removed."
        )
    return f"{goes}: {_seats(left)} stay licensed for {_users(counts.in_use)}, who stay within the limit."


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The fields of a license that a refresh changed, before and after."""
    if before is None or after is None:
        return []
    return [
        {"field": label, "before": before.get(name), "after": after.get(name)}
        for name, label in CHANGING_FIELDS.items()
        if before.get(name) != after.get(name)
    ]


def describe_changes(found: list[dict[str, Any]]) -> str:
    """The changes in one sentence."""
    if not found:
        return "Nothing changed."
    parts = [f"{change['field']} {_shown(change['before'])} → {_shown(change['after'])}" for change in found]
    return "Changed: " + "; ".join(parts) + "."


def _shown(value: Any) -> str:
    return "none" if value is None or value == "" else str(value)


def _seats(count: int) -> str:
    return "1 seat" if count == 1 else f"{count} seats"


def _users(count: int) -> str:
    return "1 user" if count == 1 else f"{count} users"
