"""Measurements of the service, run from the project root as modules (`python -m benchmarks.<name>`)."""

from __future__ import annotations

import argparse
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from sqlalchemy import create_engine, text

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


@contextmanager
def postgresql_schema(admin_url: str) -> Iterator[str]:
    """A private schema for the run, dropped after it; yields the URL that uses it."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{admin_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def database_of_its_own(url: str | None, name: str) -> Iterator[str]:
    """Where a benchmark fills its million tickets, gone when it is done: a fresh SQLite file in a
    temporary folder (`url` None), or a private schema on the PostgreSQL database at `url`. An
    SQLite URL given is used as it is."""
    if url is None:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/{name}.db"
    elif url.startswith("postgresql"):
        with postgresql_schema(url) as private:
            yield private
    else:
        yield url


def thousand_and_million(description: str | None, *, times: int, what: str) -> argparse.Namespace:
    """The command line of a benchmark timed at a thousand and at a million tickets (`what` is timed `times` times)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: a fresh SQLite file in a temporary folder; on PostgreSQL, a private schema of the database",
    )
    parser.add_argument("--small", type=int, default=1_000, help="tickets in the first round")
    parser.add_argument("--large", type=int, default=1_000_000, help="tickets in the second round")
    parser.add_argument("--times", type=int, default=times, help=f"runs of each {what} per round")
    return parser.parse_args()


def print_ratios(column: str, sizes: tuple[int, int], results: dict[int, dict[str, float]], unit: str) -> None:
    """The Markdown table of each figure at both sizes (`unit`: "µs", no decimals, or "ms", one) and their ratio."""
    small_size, large_size = sizes
    small, large = results[small_size], results[large_size]
    digits = 0 if unit == "µs" else 1
    print(f"| {column} | {small_size:,} tickets | {large_size:,} tickets | ratio |")
    print("|---|---:|---:|---:|")
    for name in small:
        print(
            f"| {name} | {small[name]:,.{digits}f} {unit} | {large[name]:,.{digits}f} {unit} "
            f"| {large[name] / small[name]:.2f} |"
        )
