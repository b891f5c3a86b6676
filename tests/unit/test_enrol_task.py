"""The `avtor.enrol` task's settings that are not the domain's."""

from celery.utils.saferepr import saferepr

from domain.enrolment import Outcome, decision_for
from tasks.enrolment import enrol


def test_the_succeeded_log_line_shows_the_outcome_of_a_shortened_decision() -> None:
    decision = decision_for(Outcome.ALREADY_ENROLLED, "sitecore\\jane", 40, 50, "r-1").as_message()
    # What Celery renders for its "succeeded" line, with the task's own limit.
    shown = saferepr(decision, enrol.resultrepr_maxsize)
    assert shown.startswith("{'allowed': True, 'outcome': 'already_enrolled'")
    assert len(shown) < len(saferepr(decision, 1024))
