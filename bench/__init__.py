"""The enrolment benchmark: `scripts/bench` (see docs/benchmarks.md)."""
