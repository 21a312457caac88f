"""Twilio's voice webhooks: the menu, the status and recording callbacks, and the fallback answer.

Views are thin: they read the form, let the call flow or `ivr.voice.calls` do the work, and
answer TwiML. Whatever fails, the caller hears an apology and can still leave a message.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, current_app, request, url_for
from flask.blueprints import BlueprintSetupState
from sqlalchemy.exc import DBAPIError

import prompts
from callflows.engine import Turn
from callflows.support_line import FLOW
from callflows.twiml import Response as TwimlResponse
from helpdesk.access import LockReport
from helpdesk.sla import load as load_sla
from ivr import metrics
from ivr.voice import calls, spool
from ivr.voice.signature import twilio_signed
from storage.calls import CallTransaction
from storage.models import utcnow
from storage.phones import masked

log = logging.getLogger(__name__)

bp = Blueprint("twilio", __name__, url_prefix="/twilio")


@bp.post("/voice")
@twilio_signed
def voice() -> Response:
    """The number's Voice URL: a new call, stored; the welcome says the same to everyone."""

    def answer(turn: Turn) -> TwimlResponse:
        turn.db.start()
        log.info("call %s from %s", turn.db.call_sid, masked(turn.db.caller()))
        return FLOW.answer(turn)

    return _menu_turn(answer, language="it")


@bp.post("/step/<step>")
@twilio_signed
def step(step: str) -> Response:
    """The caller's input (keys, a recording, a transfer's end) at a step of the menu.

    The step URL carries the call's language (`lang`) and the attempts at the step (`try`).
    """
    query = request.args.to_dict()  # a plain dict: a MultiDict raises and catches a KeyError for each absent key
    event = query.get("event")
    language = query.get("lang")
    return _menu_turn(
        lambda turn: FLOW.handle(turn, step, event),
        language=language if language in prompts.LANGUAGES else None,
        attempts=_small_number(query.get("try")),
        item=_small_number(query.get("item")),
    )


@bp.post("/status")
@twilio_signed
def status() -> Response:
    """The call's status callback: how it ended."""
    return _callback("call_status", calls.record_call_status, usual=calls.end_call_alone)


@bp.post("/recording")
@twilio_signed
def recording() -> Response:
    """The recording status callback: the audio is ready, or absent; `purpose` says what it was recorded for."""
    return _callback("recording_status", calls.record_recording_status, purpose=request.args.get("purpose", "ticket"))


@bp.post("/fallback")
@twilio_signed
def fallback() -> Response:
    """The number's fallback URL: apologise and take a message, needing neither database nor Redis."""
    log.warning("fallback answer for a call (Twilio error %s)", request.form.get("ErrorCode", "-"))
    return twiml(apology())


@bp.post("/fallback/message")
@twilio_signed
def fallback_message() -> Response:
    """The message taken by the apology: kept on disk, made into a ticket by the relay."""
    try:
        _keep_in_spool("fallback_message", request.form)
    except OSError:
        log.exception("could not spool a fallback message")
    response = TwimlResponse()
    _say_in_every_language(response, "message_kept")
    response.hangup()
    return twiml(response)


def _menu_turn(
    answer: Callable[[Turn], TwimlResponse], language: str | None, attempts: int = 0, item: int = 0
) -> Response:
    """Run one turn of the menu in one transaction; a dropped database connection is retried once."""
    for retry in (False, True):
        db = _call_transaction()
        try:
            response = answer(_turn(db, language, attempts, item))
            db.commit()
            return _after_commit(twiml(response))
        except DBAPIError as error:
            if error.connection_invalidated and not retry:
                continue  # the server dropped a pooled connection: the pool has been renewed
            log.exception("the menu failed at %s; apologising and taking a message", request.path)
        except Exception:
            log.exception("the menu failed at %s; apologising and taking a message", request.path)
        finally:
            db.close()
        break
    return twiml(apology())


def _call_transaction() -> CallTransaction:
    """The webhook's work on its call (by CallSid); the caller ID is parsed only if the call must be stored."""
    raw_from = request.form.get("From")
    return CallTransaction(
        current_app.config["ENGINE"],
        request.form.get("CallSid", ""),
        lambda: calls.caller_id(raw_from),
        current_app.config["SESSION_INFO"],
        current_app.config["NOTES_ENGINE"],
    )


def _turn(db: CallTransaction, language: str | None, attempts: int, item: int) -> Turn:
    settings = current_app.config["SETTINGS"]
    form = request.form
    steps_root = f"{_public_root()}{bp.url_prefix}/step/"
    return Turn(
        db=db,
        is_open=lambda: current_app.config["BUSINESS_HOURS"].is_open(utcnow()),
        url=lambda name, query: steps_root + _step_path(name, tuple(query.items())),
        recording_callback_url=lambda purpose: external_url(
            "twilio.recording", purpose=None if purpose == "ticket" else purpose
        ),
        max_recording_seconds=settings.max_recording_seconds,
        dial_number=settings.on_call_number,
        dial_timeout=settings.dial_timeout,
        form=form,
        timezone=settings.business_timezone,
        status_guard=current_app.config["STATUS_GUARD"],
        lock_report=LockReport(settings.dispatch_email, settings.mail_from),
        url_language=language,
        attempts=attempts,
        item=item,
        sla_table=load_sla(settings.sla_table),
    )


@functools.lru_cache(maxsize=1024)
def _step_path(name: str, query: tuple[tuple[str, str], ...]) -> str:
    """A step's path and query, quoted once: steps, languages and counts are few, and quoting is not cheap."""
    return quote(name) + ("?" + urlencode(query) if query else "")


def _small_number(value: str | None) -> int:
    """A count a step URL carries (attempts, the ticket at hand): a small number; anything else counts as none."""
    return int(value) if value and value.isdigit() and len(value) <= 2 else 0


def _callback(
    kind: str,
    handle: Callable[..., object],
    usual: Callable[[CallTransaction, Mapping[str, str]], bool] | None = None,
    **extra: str,
) -> Response:
    """Store a callback with `handle` in one transaction; `usual`, when given, first tries the usual case
    alone, in one statement (it says whether it did). Whatever fails is kept in the spool."""
    for retry in (False, True):
        db = _call_transaction()
        try:
            if usual is None or not usual(db, request.form):
                db.writing()
                handle(db.session, request.form, table=load_sla(current_app.config["SETTINGS"].sla_table), **extra)
                db.commit()
            return _after_commit(Response(status=204))
        except DBAPIError as error:
            if error.connection_invalidated and not retry:
                continue
            failure: Exception = error
        except Exception as error:
            failure = error
        finally:
            db.close()
        break
    log.error("%s callback failed; keeping it in the spool", kind, exc_info=failure)
    try:
        _keep_in_spool(kind, request.form, **extra)
    except OSError:
        log.exception("could not spool the %s callback either", kind)
    return Response(status=204)


class SpoolState:
    """Whether this process left entries in the spool, to ingest once the database answers again."""

    def __init__(self, waiting: bool) -> None:
        self.waiting = waiting
        self.ingesting = threading.Lock()


@bp.record_once
def _watch_spool(state: BlueprintSetupState) -> None:
    # Entries left by an earlier run of this process are ingested at the first commit too.
    state.app.extensions["ivr.spool"] = SpoolState(spool.waiting(state.app.config["SETTINGS"].spool_dir))


def _keep_in_spool(kind: str, form: Mapping[str, str], **extra: str) -> None:
    spool.keep(current_app.config["SETTINGS"].spool_dir, kind, form, **extra)
    current_app.extensions["ivr.spool"].waiting = True


def _after_commit(response: Response) -> Response:
    """The database answers: if this process spooled webhooks, ingest them after the answer is sent.

    So a web machine without a worker of its own loses nothing it spooled.
    """
    state: SpoolState = current_app.extensions["ivr.spool"]
    if state.waiting:
        app = current_app._get_current_object()  # type: ignore[attr-defined]

        def ingest() -> None:
            if not state.ingesting.acquire(blocking=False):
                return  # another request of this process is at it
            try:
                settings = app.config["SETTINGS"]
                report = spool.dead_letter_reporter(settings, app.config["SESSIONMAKER"])
                table = load_sla(settings.sla_table)
                spool.ingest(settings.spool_dir, app.config["SESSIONMAKER"], report_dead=report, table=table)
                state.waiting = spool.waiting(settings.spool_dir)
            except Exception:
                log.exception("could not ingest the spool; will try again after the next webhook")
            finally:
                state.ingesting.release()

        response.call_on_close(ingest)
    return response


def apology() -> TwimlResponse:
    """Sorry, in both languages, then a recorded message that will become a ticket."""
    metrics.fallback_answered(request.endpoint)
    settings = current_app.config["SETTINGS"]
    response = TwimlResponse()
    _say_in_every_language(response, "sorry_error")
    response.record(
        action=external_url("twilio.fallback_message"),
        method="POST",
        max_length=settings.max_recording_seconds,
        finish_on_key="#",
        timeout=5,
        play_beep=True,
        recording_status_callback=external_url("twilio.recording"),
        recording_status_callback_event="completed absent",
    )
    # Silence: the message step still runs, so the call is kept even without audio.
    response.redirect(external_url("twilio.fallback_message"), method="POST")
    return response


def _say_in_every_language(response: TwimlResponse, key: str) -> None:
    """Without the call's record we do not know its language: say it in each, Italian first."""
    for language in prompts.LANGUAGES:
        catalogue = prompts.catalogue(language)
        response.say(catalogue.text(key), voice=catalogue.voice, language=catalogue.say_language)


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute URL Twilio can call back: on PUBLIC_BASE_URL when set."""
    values = {k: v for k, v in values.items() if v is not None}
    path = url_for(endpoint, **values)
    root = request.script_root
    if root and path.startswith(root + "/"):
        path = path[len(root) :]
    return _public_root() + path


def _public_root() -> str:
    """The public URL of the app's root: PUBLIC_BASE_URL, or this request's (as ProxyFix rebuilt it).

    PUBLIC_BASE_URL already ends with any path prefix the proxy adds, so the script root
    (ProxyFix's X-Forwarded-Prefix) is left off the paths put after it: the prefix once.
    """
    base = current_app.config["SETTINGS"].public_base_url
    return base.rstrip("/") if base else request.url_root.rstrip("/")


def twiml(response: TwimlResponse) -> Response:
    return Response(str(response), mimetype="text/xml")
