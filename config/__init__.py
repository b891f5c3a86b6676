"""The only place that reads the environment: one typed settings object."""

from config.settings import SecretUrl, Settings, SettingsError, current_settings, hide_password, load_settings

__all__ = ["SecretUrl", "Settings", "SettingsError", "current_settings", "hide_password", "load_settings"]
