"""Measurements of the service, run from the project root as modules (`python -m benchmarks.<name>`)."""

from __future__ import annotations

import uuid
from pathlib import Path

from flask import Flask

from ivr import create_app
from ivr.settings import Secret, Settings

DIRECTORY = Path(__file__).resolve().parent.parent / "examples" / "contacts.csv"
BASE_URL = "https://ivr.example.com"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-auth-token-not-a-secret"


def bench_app(database_url: str) -> Flask:
    """The app in this process, on `database_url`, signed for BASE_URL, with a queue of its own."""
    settings = Settings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=Secret(AUTH_TOKEN),
        api_token=Secret("bench"),
        secret_key=Secret("bench"),
        database_url=database_url,
        public_base_url=BASE_URL,
        queue_name=f"bench-{uuid.uuid4().hex[:6]}",
    )
    return create_app(settings)
