"""The vendor's license service over HTTP (contract v1)."""

from adapters.license_service.client import HttpLicenseService

__all__ = ["HttpLicenseService"]
