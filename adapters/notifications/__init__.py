"""Sending notices: webhooks signed with HMAC-SHA256, and e-mail over SMTP with STARTTLS."""

from adapters.notifications.email import send_email
from adapters.notifications.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, send_webhook, signature
from domain.notices import DeliveryFailed

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryFailed",
    "send_email",
    "send_webhook",
    "signature",
]
