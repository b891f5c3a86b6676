"""The development license server: the vendor's license service (v1 and v2) for local runs, demos and tests.

It is not the vendor's server. It follows the contract on its own, without
importing the manager's client, so that tests against it catch a client that
drifts from the contract.
"""
