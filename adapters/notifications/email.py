"""E-mail over SMTP: STARTTLS (verified against the system's or the given CAs), then authentication."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from domain.moments import parse_instant
from domain.notices import Channel, DeliveryFailed, email_subject, email_text

SMTP_TIMEOUT = 20.0


def email_message(channel: Channel, document: dict[str, Any]) -> EmailMessage:
    """The notice as a plain-text e-mail to the channel's recipients."""
    message = EmailMessage()
    message["Subject"] = email_subject(document)
    message["From"] = str(channel.options["sender"])
    message["To"] = channel.target
    message["Message-ID"] = make_msgid(domain="avtor-license-manager")
    message["X-Avtor-Notice-Id"] = str(document["id"])
    message["Date"] = format_datetime(parse_instant(str(document["at"])))
    message.set_content(email_text(document))
    return message


def send_email(channel: Channel, document: dict[str, Any], tls: ssl.SSLContext | None = None) -> str:
    """Send the notice through the channel's SMTP server; raise DeliveryFailed if it does not take it."""
    options = channel.options
    host, port = str(options["host"]), int(options["port"])
    context = tls or ssl.create_default_context()
    try:
        with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT) as smtp:
            if options.get("starttls", True):
                smtp.starttls(context=context)
            if options.get("user"):
                smtp.login(str(options["user"]), channel.secret)
            refused = smtp.send_message(email_message(channel, document))
    except smtplib.SMTPAuthenticationError as error:
        raise DeliveryFailed(
            f"the SMTP server refused the user's password (SMTP {error.smtp_code})"
        ) from None
    except smtplib.SMTPException as error:
        raise DeliveryFailed(f"the SMTP server refused the message: {error.__class__.__name__}") from None
    except (OSError, ssl.SSLError) as error:
        raise DeliveryFailed(f"the SMTP server {host}:{port} could not be reached: {error}") from None
    if refused:
        return f"sent; refused for {', '.join(sorted(refused))}"
    return f"sent to {channel.target}"
