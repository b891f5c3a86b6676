"""A small client for hosts (the CMS) that enrol editors through Redis.

It speaks the enrolment contract (version 2) with nothing but redis-py, exactly as a
host in any other language would (see docs/host-integration.md):

    from host_client import EnrolmentClient

    with EnrolmentClient("redis://avtor-host:PASSWORD@127.0.0.1:6379/0") as client:
        decision = client.enrol("sitecore\\\\Bob", host="cms-prod-1")
"""

from host_client.client import (
    DEFAULT_REDIS_URL,
    DEFAULT_TIMEOUT,
    EnrolmentClient,
    EnrolmentTimeout,
    enrol,
    redact_url,
    redis_url_from_environment,
)
from host_client.protocol import (
    DECISION_KEY_PREFIX,
    MAX_ENTRY_BYTES,
    MAX_HOST_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    OUTCOMES,
    REQUESTS_STREAM,
    Decision,
    MalformedDecision,
    decision_key,
    read_decision,
    request_fields,
)

__all__ = [
    "DECISION_KEY_PREFIX",
    "DEFAULT_REDIS_URL",
    "DEFAULT_TIMEOUT",
    "MAX_ENTRY_BYTES",
    "MAX_HOST_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "OUTCOMES",
    "REQUESTS_STREAM",
    "Decision",
    "EnrolmentClient",
    "EnrolmentTimeout",
    "MalformedDecision",
    "decision_key",
    "enrol",
    "read_decision",
    "redact_url",
    "redis_url_from_environment",
    "request_fields",
]
