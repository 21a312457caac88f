"""Settings: each is one line of ivr.settings.Settings, read from the environment as its type says,
and the README's table is made from those lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.settings import PROJECT_DIR, Secret, Settings, SettingsError, readme_table

REQUIRED = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "s3cr3t-auth", "API_TOKEN": "s3cr3t-api"}


def test_the_readme_settings_table_is_the_one_the_settings_make():
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    start = readme.index("| setting | default | meaning |")
    table = readme[start : readme.index("\n\n", start)]
    expected = readme_table()
    assert table == expected, f"the README's settings table should read:\n\n{expected}\n"


def test_each_variable_is_read_as_its_settings_type():
    settings = Settings.from_env(
        {
            **REQUIRED,
            "SMTP_PORT": "2525",
            "RELAY_INTERVAL": "0.5",
            "RECORDINGS_DIR": "/srv/recordings",
            "TWILIO_RECORDING_HOSTS": " API.twilio.com , 127.0.0.1:8099,",
            "RETRY_INTERVALS": "2,4",
            "SMTP_PASSWORD": "hunter2",
            "PUBLIC_BASE_URL": "https://help.example.com/ivr/",
        }
    )
    assert settings.smtp_port == 2525 and settings.relay_interval == 0.5
    assert settings.recordings_dir == Path("/srv/recordings")
    assert settings.twilio_recording_hosts == ("api.twilio.com", "127.0.0.1:8099")
    assert settings.retry_intervals == (2, 4)
    assert isinstance(settings.smtp_password, Secret) and isinstance(settings.twilio_auth_token, Secret)
    assert settings.public_base_url == "https://help.example.com/ivr"
    assert all(secret not in repr(settings) for secret in ("hunter2", "s3cr3t"))


def test_unset_and_empty_variables_take_the_defaults():
    settings = Settings.from_env({**REQUIRED, "SMTP_HOST": ""})
    assert settings.smtp_host == "127.0.0.1" and settings.dispatch_email is None and settings.lease_seconds == 150


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("SMTP_PORT", "twenty-five", "SMTP_PORT must be a whole number"),
        ("RELAY_INTERVAL", "soon", "RELAY_INTERVAL must be a number"),
        ("RETRY_INTERVALS", "10,later", "RETRY_INTERVALS must be seconds separated by commas"),
        ("SMTP_TLS", "tls", "SMTP_TLS must be none, starttls or ssl"),
    ],
)
def test_a_malformed_variable_is_refused_by_name(variable, value, says):
    with pytest.raises(SettingsError, match=says):
        Settings.from_env({**REQUIRED, variable: value})


def test_missing_secrets_are_named_and_have_no_default():
    with pytest.raises(SettingsError, match="TWILIO_AUTH_TOKEN, API_TOKEN"):
        Settings.from_env({"TWILIO_ACCOUNT_SID": "AC" + "0" * 32})
