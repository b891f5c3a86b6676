"""Webhooks: the notice's JSON body, POSTed with an HMAC-SHA256 signature over timestamp and body.

The receiver computes HMAC-SHA256 with the channel's secret over `<timestamp>.<body>`
(the timestamp header's value, a dot, the raw body) and compares it with the
signature header's hex digest, after `sha256=`; it refuses timestamps far from its clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import requests

from domain.notices import DeliveryFailed

SIGNATURE_HEADER = "X-Avtor-Signature"
TIMESTAMP_HEADER = "X-Avtor-Timestamp"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_body(document: dict[str, Any]) -> bytes:
    """The JSON body, in one stable form (sorted keys, no spaces), as signed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def send_webhook(
    session: requests.Session, url: str, secret: str, document: dict[str, Any], now: datetime
) -> str:
    """POST the notice; return what the receiver answered, or raise DeliveryFailed."""
    body = webhook_body(document)
    timestamp = str(int(now.timestamp()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "avtor-license-manager",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        "X-Avtor-Notice-Id": str(document["id"]),
    }
    try:
        response = session.post(url, data=body, headers=headers, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        response.raise_for_status()
    except requests.HTTPError as error:
        raise DeliveryFailed(f"the receiver answered HTTP {error.response.status_code}") from None
    except requests.RequestException as error:
        raise DeliveryFailed(f"the receiver could not be reached: {error.__class__.__name__}") from None
    return f"HTTP {response.status_code}"
