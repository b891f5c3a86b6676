"""Use cases: small handlers over the ports of `domain.ports`, one transaction each."""
