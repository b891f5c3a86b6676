"""The Avtor license agreement, which an administrator accepts before adding anything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.refusals import Refused

AGREEMENT_VERSION = "1.0"

AGREEMENT_TEXT = """\
AVTOR ADD-ON LICENSE AGREEMENT (version 1.0)

1. Named users. Each Avtor license key grants the number of named-user seats
   stated by the vendor until its expiry date. A seat belongs to one CMS user
   name; it may be moved to another user only by removing the first user.
2. Counting. The Avtor License Manager counts the users who hold seats and
   reports that number to the vendor's license service when it validates a key.
3. Limits. When more users hold seats than the licenses grant, Avtor may not be
   used until users are removed or licenses are added.
4. Keys. License keys are confidential; do not share them outside your
   organization.
5. Validation. The manager contacts the vendor's license service when a key is
   added or refreshed and every few days on its own. A key the service cannot
   confirm keeps its seats for a grace period only.
"""


class AgreementNotAccepted(Refused):
    """Something was to be added before the license agreement was accepted."""

    def __init__(self) -> None:
        super().__init__(
            f"The Avtor license agreement (version {AGREEMENT_VERSION}) has not been accepted yet: "
            "an administrator must read and accept it before licenses or users can be added."
        )


@dataclass(frozen=True)
class Acceptance:
    """Who accepted which version of the agreement, and when."""

    version: str
    accepted_by: str
    accepted_at: datetime

    @property
    def is_current(self) -> bool:
        """Whether this acceptance covers the agreement in force."""
        return self.version == AGREEMENT_VERSION
