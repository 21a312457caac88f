"""Settings, read from the environment once at start. Secrets have no default and never print."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Secret(str):
    """A string that does not show itself in reprs, logs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('**********')"


class SettingsError(Exception):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    twilio_account_sid: str
    twilio_auth_token: Secret = field(repr=False)
    api_token: Secret = field(repr=False)
    database_url: str = f"sqlite:///{PROJECT_DIR / 'var' / 'ivr.db'}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "ivr"
    public_base_url: str | None = None
    trusted_proxies: int = 0
    twilio_recording_hosts: tuple[str, ...] = ("api.twilio.com",)
    recordings_dir: Path = PROJECT_DIR / "var" / "recordings"
    spool_dir: Path = PROJECT_DIR / "var" / "spool"
    max_recording_seconds: int = 120
    on_call_number: str | None = None
    dial_timeout: int = 20
    business_hours: str = "mon-fri 09:00-18:00"
    business_timezone: str = "Europe/Rome"
    whisper_model: str = "bundled"
    model_cache_dir: Path = PROJECT_DIR / "var" / "models"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_tls: str = "none"  # none | starttls | ssl
    smtp_user: str | None = None
    smtp_password: Secret | None = field(default=None, repr=False)
    mail_from: str = "assistenza@example.com"
    dispatch_email: str | None = None
    status_max_failures: int = 5
    status_lock_seconds: int = 3600
    relay_interval: float = 2.0
    lease_seconds: int = 150
    retry_intervals: tuple[int, ...] = (10, 30, 60, 120, 300, 600, 1800, 3600)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables named like the fields in upper case."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, raw)
        missing = [
            name.upper() for name in ("twilio_account_sid", "twilio_auth_token", "api_token") if name not in values
        ]
        if missing:
            raise SettingsError(f"missing required setting(s): {', '.join(missing)}")
        return cls(**values)  # type: ignore[arg-type]


def _convert(name: str, raw: str) -> object:
    if name in ("twilio_auth_token", "api_token", "smtp_password"):
        return Secret(raw)
    if name in ("recordings_dir", "spool_dir", "model_cache_dir"):
        return Path(raw)
    if name == "twilio_recording_hosts":
        return tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    if name in (
        "trusted_proxies",
        "max_recording_seconds",
        "dial_timeout",
        "smtp_port",
        "lease_seconds",
        "status_max_failures",
        "status_lock_seconds",
    ):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{name.upper()} must be a whole number") from None
    if name == "retry_intervals":
        try:
            return tuple(int(part) for part in raw.split(",") if part.strip())
        except ValueError:
            raise SettingsError("RETRY_INTERVALS must be seconds separated by commas") from None
    if name == "relay_interval":
        return float(raw)
    if name == "public_base_url":
        return raw.rstrip("/")
    if name == "smtp_tls" and raw not in ("none", "starttls", "ssl"):
        raise SettingsError("SMTP_TLS must be none, starttls or ssl")
    return raw
