"""`avtorlm report`: who holds seats, for the vendor's true-up or an audit, as CSV or JSON."""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any, TextIO

from cli.context import Context
from cli.licenses import license_document
from cli.output import emit_json, instant, plural, warn
from cli.users import seat_document
from domain.services.audit import SeatReport, seat_report
from tasks.messages import counts_message

CSV_COLUMNS = [
    "installation_id",
    "generated_at",
    "seats_licensed",
    "seats_in_use",
    "username",
    "display_name",
    "assignment",
    "assigned_at",
    "assigned_by",
    "last_seen_at",
    "reserved",
]
# A spreadsheet takes a cell beginning with one of these for a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `report` command."""
    report = commands.add_parser(
        "report", help="every seat holder with the installation id and counts, as CSV or JSON"
    )
    report.add_argument("--format", choices=["csv", "json"], default="json", help="json (default) or csv")
    report.add_argument("--show-keys", action="store_true", help="show license keys in full (JSON only)")
    report.set_defaults(run=write_report, json=False)


def write_report(arguments: argparse.Namespace, context: Context) -> int:
    """Write the report to standard output; for CSV, a summary line on stderr."""
    report = seat_report(context.store(), context.now(), context.settings.grace_period)
    if arguments.format == "json":
        emit_json(report_document(report, context.show_keys))
        return 0
    write_csv(report, sys.stdout)
    sys.stdout.flush()
    warn(
        f"Report of installation {report.installation_id} at {instant(report.generated_at)}: "
        f"{plural(report.counts.in_use, 'seat holder')}, {plural(report.counts.licensed, 'seat')} licensed."
    )
    return 0


def write_csv(report: SeatReport, stream: TextIO) -> None:
    """The report as CSV that a spreadsheet opens without running any cell as a formula."""
    # RFC 4180's line ends: a cell holding a line break or a carriage return is then quoted.
    writer = csv.DictWriter(stream, CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for holder in seat_document_rows(report):
        writer.writerow({column: spreadsheet_safe(value) for column, value in holder.items()})


def spreadsheet_safe(value: Any) -> Any:
    """A cell that a spreadsheet shows as text: a leading single quote keeps a formula from running."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def report_document(report: SeatReport, show_keys: bool) -> dict[str, Any]:
    """The report as one JSON object."""
    return {
        "installation_id": report.installation_id,
        "generated_at": instant(report.generated_at),
        **counts_message(report.counts),
        "licenses": [license_document(view, show_keys) for view in report.licenses],
        "seat_holders": [seat_document(seat) for seat in report.holders],
    }


def seat_document_rows(report: SeatReport) -> list[dict[str, Any]]:
    """One CSV row per seat holder, each carrying the installation and the counts."""
    shared = {
        "installation_id": report.installation_id,
        "generated_at": instant(report.generated_at),
        "seats_licensed": report.counts.licensed,
        "seats_in_use": report.counts.in_use,
    }
    return [{**shared, **seat_document(seat)} for seat in report.holders]
