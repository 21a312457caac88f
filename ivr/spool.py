"""Webhook data kept on local disk when the database cannot take it, turned into rows later.

The fallback answer writes here without touching the database or Redis; the relay
ingests the files once the database answers, and deletes each file after its commit.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ivr import calls

log = logging.getLogger(__name__)

HANDLERS: dict[str, Callable[..., object]] = {
    "fallback_message": calls.record_fallback_message,
    "recording_status": calls.record_recording_status,
    "call_status": calls.record_call_status,
}


def keep(spool_dir: Path, kind: str, form: Mapping[str, str], **extra: str) -> Path:
    """Write one webhook's form (and what its URL said, `extra`) to the spool, atomically."""
    if kind not in HANDLERS:
        raise ValueError(f"unknown spool kind {kind!r}")
    spool_dir.mkdir(parents=True, exist_ok=True)
    name = f"{kind}.{uuid.uuid4().hex}.json"
    temporary = spool_dir / f".{name}.tmp"
    temporary.write_text(json.dumps({"kind": kind, "form": dict(form), "extra": extra}), encoding="utf-8")
    os.replace(temporary, spool_dir / name)
    return spool_dir / name


def ingest(spool_dir: Path, make_session: sessionmaker[Session]) -> int:
    """Turn spooled webhooks into rows; a file that fails stays for the next try. Returns how many were ingested."""
    if not spool_dir.is_dir():
        return 0
    ingested = 0
    for path in sorted(spool_dir.glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            with make_session() as session, session.begin():
                HANDLERS[entry["kind"]](session, entry["form"], **entry.get("extra", {}))
        except Exception:
            log.exception("could not ingest spooled %s; will try again", path.name)
            continue
        path.unlink(missing_ok=True)
        ingested += 1
    return ingested
