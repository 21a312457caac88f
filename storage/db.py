"""Engines and sessions, and bringing a database's schema up to date with Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.engine import ExceptionContext
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
    return _postgresql_engine(make_url(url))


def _postgresql_engine(url: URL) -> Engine:
    # No pre-ping round trip per checkout: a connection the server dropped fails its first
    # statement, SQLAlchemy then discards the pool's older connections, and the webhooks retry
    # once (ivr.voice.webhooks). Connections are renewed hourly all the same.
    return create_engine(url, pool_recycle=3600, hide_parameters=True)


def make_notes_engine(engine: Engine) -> Engine:
    """The engine for what the line notes about a call and may lose to a database crash (storage.calls):
    on PostgreSQL, its commits do not wait for the log to reach the disk (`synchronous_commit=off`).

    Such a commit is lost only if the server or its machine crashes within the next 0.6 s (three
    rounds of its WAL writer), and the database stays consistent, as SQLite's `synchronous=NORMAL`
    (make_engine) may lose the last commits to a power cut. Waiting for the disk is most of what
    storing one row costs a webhook. On SQLite, the engine itself.
    """
    if engine.dialect.name != "postgresql":
        return engine
    url = engine.url
    given = url.query.get("options", ())  # libpq's options (the URL's own, a search_path say) are kept
    options = [given] if isinstance(given, str) else list(given)
    notes = _postgresql_engine(url.update_query_dict({"options": " ".join([*options, "-c synchronous_commit=off"])}))
    _renewed_together(engine, notes)
    return notes


def _renewed_together(*engines: Engine) -> None:
    """Engines on one server whose pools are given up together: disposed of by whoever owns them, or
    found dropped (a server restart drops every connection), so that the webhooks' one retry after a
    dropped connection (ivr.voice.webhooks) finds no stale connection in another pool either."""
    renewing = False

    def renew_others(origin: Engine) -> None:
        nonlocal renewing
        if renewing:
            return  # the dispose of another engine of the group, fired by this one
        renewing = True
        try:
            for engine in engines:
                if engine is not origin:
                    engine.dispose()
        finally:
            renewing = False

    def on_error(context: ExceptionContext) -> None:
        if context.is_disconnect and context.engine is not None:
            renew_others(context.engine)  # its own pool SQLAlchemy renews itself

    for engine in engines:
        event.listen(engine, "engine_disposed", renew_others)
        event.listen(engine, "handle_error", on_error)


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
