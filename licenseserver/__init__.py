"""The development license server: the vendor's license service (contract v1) for local runs, demos and tests.

It is not the vendor's server. It follows `license-service-v1.md` on its own,
without importing the manager's client, so that tests against it catch a client
that drifts from the contract.
"""
