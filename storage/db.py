"""Engines and sessions, and bringing a database's schema up to date with Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.statements import execute_sql

if TYPE_CHECKING:  # Alembic is loaded only when a schema is brought up to date
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 30_000  # how long an SQLite writer waits for another's write lock
# The commit that takes SQLite's write-ahead log past this many pages copies them into the database
# file (a checkpoint, synced to disk) before its webhook answers. A new ticket writes some 24 pages
# (its row and indexes, its thread, its outbox work), mostly the same few each time (each table's and
# index's last leaf), and a checkpoint copies a page once however often it changed. SQLite's default,
# 1000, made about every 40th ticket wait 20 ms for one; at 4000 they come a quarter as often and each
# takes about 50 ms: opening 2,000 tickets in a row spent a quarter less time in them, and its 99th
# percentile fell from 15-21 ms to 3-4 ms. The log file stays under some 16 MB.
WAL_AUTOCHECKPOINT_PAGES = 4000


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets foreign keys, WAL, real transactions and a busy timeout.

    Bound parameters (callers' numbers, names, transcripts) are kept out of the text of
    SQLAlchemy's errors and statement logs, which end up in tracebacks and log files.
    """
    if url.startswith("sqlite"):
        _make_sqlite_directory(url)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy, not the driver, begin transactions, so that savepoints work.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            # In WAL mode, NORMAL syncs at checkpoints, not at every commit: a power cut may lose the
            # last commits, never the database's consistency.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection):  # type: ignore[no-untyped-def]
            # Writers take the write lock up front: concurrent writers (web processes, the worker)
            # then wait for each other (busy timeout) instead of failing on lock upgrade. A
            # connection marked read_only (a webhook that only reads) takes no lock: in WAL mode
            # it reads its snapshot while writers write.
            options = connection.get_execution_options()
            if options.get("single_statement"):
                return  # one statement on its own (storage.calls): atomic without a transaction
            # On the driver's cursor: a statement through SQLAlchemy costs more than SQLite's BEGIN.
            execute_sql(connection, "BEGIN DEFERRED" if options.get("read_only") else "BEGIN IMMEDIATE")

        return engine
    # No pre-ping round trip per checkout: a connection the server dropped fails its first
    # statement, SQLAlchemy then discards the pool's older connections, and the webhooks retry
    # once (ivr.voice.webhooks). Connections are renewed hourly all the same.
    return create_engine(url, pool_recycle=3600, hide_parameters=True)


def _make_sqlite_directory(url: str) -> None:
    """Create the SQLite file's folder when missing (`var/` on a fresh clone): SQLite makes the file, not the folder."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return  # in memory, or a URI filename that SQLite opens as it is told
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def make_sessionmaker(engine: Engine, info: dict[str, object] | None = None) -> sessionmaker[Session]:
    """Sessions on `engine`; `info` is each session's `Session.info` (what the process's settings turned on)."""
    return sessionmaker(engine, expire_on_commit=False, info=dict(info or {}))


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the database at `url`, with our migrations."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision` (every one by default) to the database at `url`."""
    from alembic import command

    if url.startswith("sqlite"):
        _make_sqlite_directory(url)  # Alembic opens its own engine, not make_engine's
    command.upgrade(alembic_config(url), revision)
