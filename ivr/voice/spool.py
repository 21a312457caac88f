"""Webhook data kept on local disk when the database cannot take it, turned into rows later.

The fallback answer writes here without touching the database or Redis. The relay, and
the web process that wrote the files, ingest them once the database answers, each file
under an exclusive lock so two processes never ingest one twice, and delete it after its
commit. An entry that fails while the database answers (it can never be ingested: an
over-long CallSid, say) is tried a few times, then moved to `dead/` and reported once.
The files hold callers' numbers: only the service's user may read them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from helpdesk import notices
from helpdesk.sla import SlaTable
from ivr.jobs import mail
from ivr.settings import Settings
from ivr.voice import calls

log = logging.getLogger(__name__)

HANDLERS: dict[str, Callable[..., object]] = {
    "fallback_message": calls.record_fallback_message,
    "recording_status": calls.record_recording_status,
    "call_status": calls.record_call_status,
}
MAX_TRIES = 5  # failures, while the database answers, before an entry goes to dead/
DEAD = "dead"

# Called with the file's name, its entry and why it failed, when an entry goes to dead/.
DeadLetterReport = Callable[[str, dict[str, Any], str], None]


def keep(spool_dir: Path, kind: str, form: Mapping[str, str], **extra: str) -> Path:
    """Write one webhook's form (and what its URL said, `extra`) to the spool, atomically, for our user only."""
    if kind not in HANDLERS:
        raise ValueError(f"unknown spool kind {kind!r}")
    spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{kind}.{uuid.uuid4().hex}.0.json"
    temporary = spool_dir / f".{name}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump({"kind": kind, "form": dict(form), "extra": extra}, file)
    os.replace(temporary, spool_dir / name)
    return spool_dir / name


def waiting(spool_dir: Path) -> bool:
    """True when the spool holds entries to ingest."""
    try:
        return any(entry.name.endswith(".json") for entry in os.scandir(spool_dir) if entry.is_file())
    except OSError:
        return False


def ingest(
    spool_dir: Path,
    make_session: sessionmaker[Session],
    *,
    report_dead: DeadLetterReport | None = None,
    table: SlaTable | None = None,
) -> int:
    """Turn spooled webhooks into rows; returns how many were ingested.

    A file another process is ingesting is skipped. A file that fails stays for the next
    round, unless the database answers, in which case the failure counts as a try. A ticket
    opened from an entry gets its deadlines from `table` (the SLA table in force; None: the default).
    """
    if not spool_dir.is_dir():
        return 0
    ingested = 0
    for path in sorted(spool_dir.glob("*.json"), key=_age):
        with _locked(path) as file:
            if file is None:
                continue  # another process has it, or has finished it
            try:
                entry = json.loads(file.read())
                with make_session() as session, session.begin():
                    HANDLERS[entry["kind"]](session, entry["form"], table=table, **entry.get("extra", {}))
            except Exception as error:
                reason = f"{type(error).__name__}: {str(error)[:300]}"
                if not _database_answers(make_session):
                    log.warning("the database does not answer; %s stays in the spool", path.name)
                    return ingested
                _count_try(path, reason, report_dead)
                continue
            path.unlink(missing_ok=True)
            ingested += 1
    return ingested


def dead_letter_reporter(settings: Settings, make_session: sessionmaker[Session]) -> DeadLetterReport:
    """Report an entry gone to dead/ to the dispatchers, by email (logged only, without DISPATCH_EMAIL)."""

    def report(name: str, entry: dict[str, Any], reason: str) -> None:
        if not settings.dispatch_email:
            return
        raw_form = entry.get("form")
        form = {str(k): str(v) for k, v in raw_form.items()} if isinstance(raw_form, dict) else {}
        draft = mail.spool_dead_letter_notice(name, str(entry.get("kind")), form, reason, settings.dispatch_email)
        with make_session() as session, session.begin():
            notices.queue(session, draft)

    return report


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@contextmanager
def _locked(path: Path) -> Iterator[IO[str] | None]:
    """The file, held under an exclusive lock; None if another process holds it or it is gone."""
    try:
        file = path.open(encoding="utf-8")
    except FileNotFoundError:
        yield None
        return
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        try:  # the lock is on what we opened: is it still the file at this path?
            current = os.stat(path)
        except FileNotFoundError:
            yield None
            return
        yield file if current.st_ino == os.fstat(file.fileno()).st_ino else None


def _database_answers(make_session: sessionmaker[Session]) -> bool:
    try:
        with make_session() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def _count_try(path: Path, reason: str, report_dead: DeadLetterReport | None) -> None:
    """One more failed try, kept in the file's name; past MAX_TRIES the file goes to dead/."""
    kind, key, tries = _name_parts(path)
    tries += 1
    if tries < MAX_TRIES:
        log.warning("could not ingest spooled %s (try %d of %d): %s", kind, tries, MAX_TRIES, reason.split(":")[0])
        os.replace(path, path.with_name(f"{kind}.{key}.{tries}.json"))
        return
    dead_dir = path.parent / DEAD
    dead_dir.mkdir(mode=0o700, exist_ok=True)
    dead = dead_dir / f"{kind}.{key}.json"
    os.replace(path, dead)
    log.error("spooled %s could not be ingested after %d tries; moved to %s/%s", kind, tries, DEAD, dead.name)
    if report_dead is not None:
        try:
            entry = json.loads(dead.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entry = {"kind": kind, "form": {}}
        try:
            report_dead(dead.name, entry, reason)
        except Exception:
            log.exception("could not report the dead spool entry %s", dead.name)


def _name_parts(path: Path) -> tuple[str, str, int]:
    """kind, key and tries from `kind.key.tries.json` (older files: `kind.key.json`)."""
    parts = path.name.removesuffix(".json").split(".")
    if len(parts) == 3 and parts[2].isdigit():
        return parts[0], parts[1], int(parts[2])
    return parts[0], ".".join(parts[1:]) or uuid.uuid4().hex, 0
