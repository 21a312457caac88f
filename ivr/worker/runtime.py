"""Settings and database sessions for processes without the web app (the worker, the relay)."""

from __future__ import annotations

from functools import cache

from sqlalchemy.orm import Session, sessionmaker

from helpdesk import oncall
from ivr.settings import Settings
from storage.db import make_engine, make_sessionmaker


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def session_factory() -> sessionmaker[Session]:
    alerts_on = bool(settings().oncall_sms_to)
    return make_sessionmaker(make_engine(settings().database_url), oncall.session_info(alerts_on))
