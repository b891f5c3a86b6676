"""The vendor's license service over HTTP (contract v2: signed answers, a nonce per request)."""

from adapters.license_service.client import HttpLicenseService

__all__ = ["HttpLicenseService"]
