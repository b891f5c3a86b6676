"""A small client for hosts (the CMS) that enrol editors through Redis.

It speaks the enrolment contract with nothing but redis-py, exactly as a host in
any other language would (see docs/host-integration.md); Celery is not needed.
"""

from host_client.client import EnrolmentClient, EnrolmentFailed, EnrolmentTimeout, enrol
from host_client.protocol import ENROLMENT_QUEUE, RESULT_KEY_PREFIX, enrolment_message

__all__ = [
    "ENROLMENT_QUEUE",
    "RESULT_KEY_PREFIX",
    "EnrolmentClient",
    "EnrolmentFailed",
    "EnrolmentTimeout",
    "enrol",
    "enrolment_message",
]
