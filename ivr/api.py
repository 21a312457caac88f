"""The JSON API for dispatchers and tools: tickets by number and by caller, and actions on them, behind a bearer token.

A PIN never travels in a URL (URLs end up in access logs and browser histories): the
status endpoint takes it in the `X-Ticket-PIN` header or a POST body, and refuses a
query string that carries one. An action is taken as the user the body names, under
the console's rules (helpdesk.roles, helpdesk.actions).
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.orm import Session

from callflows.status import status_speech
from helpdesk import actions, thread
from helpdesk.access import AUTHORIZED, LOCKED, UNAVAILABLE, LockReport, may_hear
from helpdesk.actions import ActionForbidden, ActionRefused
from helpdesk.phases import PHASES
from helpdesk.sla import load as load_sla
from ivr.db import db_session
from storage.models import Ticket, User, utcnow
from storage.phones import to_e164
from storage.stats import UnknownCustomer, as_dict, period, statistics
from storage.tickets import get_ticket_by_number, get_ticket_for_update, get_tickets_of_caller
from storage.users import get_user_by_email

bp = Blueprint("api", __name__, url_prefix="/api")


def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        expected = "Bearer " + current_app.config["SETTINGS"].api_token
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return jsonify(error="a valid bearer token is required"), 401, {"WWW-Authenticate": "Bearer"}
        return view(*args, **kwargs)

    return checked


@bp.get("/tickets/<number>")
@token_required
def ticket(number: str) -> Any:
    found = get_ticket_by_number(db_session(), number)
    if found is None:
        return jsonify(error="no ticket with that number"), 404
    return jsonify(ticket_json(found, request.args.get("lang", "it")))


PIN_HEADER = "X-Ticket-PIN"


@bp.route("/tickets/<number>/status", methods=["GET", "POST"])
@token_required
def ticket_status(number: str) -> Any:
    """What the line would read to `caller` (E.164) about ticket `number`, under the line's own rule and budget.

    GET takes `caller` and `lang` in the query string, POST in a form or JSON body; the PIN
    comes in the X-Ticket-PIN header or, with POST, the body's `pin`. Unknown, not the
    caller's and a wrong PIN give the same 404; no attempts left for this caller or this
    ticket give 423; Redis unreachable, 503 (no guessable question is answered).
    """
    if "pin" in request.args:
        # Refused before anything is counted or looked up; the URL (and so the PIN) is not logged by us.
        return jsonify(error=f"send the PIN in the {PIN_HEADER} header or in a POST body, never in the URL"), 400
    fields = _status_fields()
    settings = current_app.config["SETTINGS"]
    session = db_session()
    verdict = may_hear(
        session,
        current_app.config["STATUS_GUARD"],
        number,
        to_e164(str(fields.get("caller") or "")),
        _pin(fields),
        report=LockReport(settings.dispatch_email, settings.mail_from),
    )
    session.commit()  # a locked PIN's report to the dispatchers may have been queued
    if verdict.outcome == LOCKED:
        return jsonify(error="too many failed attempts for this caller or this ticket; try again later"), 423
    if verdict.outcome == UNAVAILABLE:
        return jsonify(error="ticket status is not available at the moment"), 503
    if verdict.outcome != AUTHORIZED or verdict.ticket is None:
        # One answer for unknown, not-yours and a wrong PIN: the API tells no more than the line.
        return jsonify(error="no ticket with that number that this caller may hear about"), 404
    found = verdict.ticket
    language = str(fields.get("lang") or request.args.get("lang") or "it")
    zone = ZoneInfo(settings.business_timezone)
    speech = status_speech(found, language, utcnow(), zone)
    return jsonify(
        number=found.number,
        phase=found.status,
        urgency=found.urgency,
        updated_at=found.updated_at.isoformat(),
        estimated_restore_at=found.estimated_restore_at.isoformat() if found.estimated_restore_at else None,
        technician=found.technician.first_name if found.technician else None,
        said=" ".join(part if isinstance(part, str) else "" for part in speech).replace("  ", " "),
    )


def _status_fields() -> Mapping[str, Any]:
    """The status request's fields: the query string of a GET, the form or JSON body of a POST."""
    if request.method == "GET":
        return request.args
    if request.is_json:
        body = request.get_json(silent=True)
        return body if isinstance(body, dict) else {}
    return request.form


def _pin(fields: Mapping[str, Any]) -> str | None:
    """The PIN from the X-Ticket-PIN header, or a POST body's `pin`; None when none is given."""
    given = request.headers.get(PIN_HEADER) or (fields.get("pin") if request.method == "POST" else None)
    if given is None:
        return None
    return str(given).strip() or None


@bp.get("/stats")
@token_required
def stats() -> Any:
    """A period's statistics (storage.stats): `from` and `to` days (YYYY-MM-DD, `to` included) in the help
    desk's time zone, by default the current month; `customer`, a customer's code, for its tickets and calls."""
    zone = current_app.config["SETTINGS"].business_timezone
    now = utcnow()
    try:
        first, last = _days(request.args.get("from"), request.args.get("to"), now.astimezone(ZoneInfo(zone)).date())
    except ValueError as bad:
        return jsonify(error=str(bad)), 400
    start, end = period(first, last, zone)
    customer = request.args.get("customer") or None
    try:
        found = statistics(db_session().connection(), start, end, customer_code=customer, now=now, timezone=zone)
    except UnknownCustomer:
        return jsonify(error=f"no customer has the code {customer!r}"), 400
    return jsonify(as_dict(found))


def _days(first: str | None, last: str | None, today: date) -> tuple[date, date]:
    """(from, to): as given, or the month of the other one, or the current month; ValueError says what is wrong."""
    parsed = {name: _day(name, value) for name, value in (("from", first), ("to", last))}
    start = parsed["from"] or (parsed["to"] or today).replace(day=1)
    end = parsed["to"] or _month_end(parsed["from"] or today)
    if end < start:
        raise ValueError(f"`to` ({end.isoformat()}) is before `from` ({start.isoformat()})")
    return start, end


def _day(name: str, value: str | None) -> date | None:
    if value is None or value == "":
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"`{name}` must be a day as YYYY-MM-DD, not {value!r}") from None


def _month_end(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


@bp.get("/tickets")
@token_required
def tickets_of_caller() -> Any:
    caller = to_e164(request.args.get("caller", ""))
    if caller is None:
        return jsonify(error="caller must be a phone number, in E.164 like +390392847438"), 400
    language = request.args.get("lang", "it")
    return jsonify(tickets=[ticket_json(t, language) for t in get_tickets_of_caller(db_session(), caller)])


def ticket_json(ticket: Ticket, language: str) -> dict[str, Any]:
    """The ticket as the API shows it; the thread's entries are put into words in `language` (Italian if unknown)."""
    return {
        "number": ticket.number,
        "status": ticket.status,
        "urgency": ticket.urgency,
        "channel": ticket.channel,
        "language": ticket.language,
        "caller": ticket.caller,
        "callback_number": ticket.callback_number,
        "customer_code": ticket.customer.code if ticket.customer else None,
        "customer_name": ticket.customer.name if ticket.customer else None,
        "contact_email": ticket.contact.email if ticket.contact else None,
        "needs_match": ticket.needs_match,
        "voicemail": ticket.voicemail,
        "transcript": ticket.transcript,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
        "confirmation_sent": ticket.confirmation_sent_at is not None,
        "technician": ticket.technician.name if ticket.technician else None,
        "estimated_restore_at": ticket.estimated_restore_at.isoformat() if ticket.estimated_restore_at else None,
        "events": [
            {"kind": e.kind, "at": e.at.isoformat(), "facts": e.facts, "text": thread.render(e, language)}
            for e in ticket.events
        ],
    }


# -- actions -----------------------------------------------------------------------------------

# What a JSON value must be to become an action's argument; each refuses anything else.
Parser = Callable[[str, Any], Any]


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ActionRefused(field, "not_text")
    return value


def _optional_text(field: str, value: Any) -> str | None:
    return None if value is None else _text(field, value)


def _whole_number(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ActionRefused(field, "not_a_whole_number")
    return value


def _true_or_false(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ActionRefused(field, "not_true_or_false")
    return value


def _moment(field: str, value: Any) -> datetime:
    """An ISO 8601 date and time with its offset, like 2026-12-01T14:30:00+01:00 (or Z for UTC)."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise ActionRefused(field, "not_a_time")
    if moment.tzinfo is None:
        raise ActionRefused(field, "time_zone_required")
    return moment


def _under_sla_table(action: Callable[..., object]) -> Callable[..., object]:
    """The action under the SLA table in force (SLA_TABLE): its deadlines, what each level provides."""

    def run(session: Session, ticket: Ticket, actor: User, **fields: object) -> object:
        return action(session, ticket, actor, **fields, table=load_sla(current_app.config["SETTINGS"].sla_table))

    return run


@dataclass(frozen=True)
class ApiAction:
    """An action as the API takes it: the function that does it, and its JSON fields (parser, required)."""

    run: Callable[..., object]  # (session, ticket, actor, **fields)
    fields: Mapping[str, tuple[Parser, bool]]


# By helpdesk.roles' names of the actions (a test keeps the two sets equal).
API_ACTIONS: dict[str, ApiAction] = {
    "change_urgency": ApiAction(
        _under_sla_table(actions.set_urgency), {"urgency": (_text, True), "reason": (_text, False)}
    ),
    "match_caller": ApiAction(
        _under_sla_table(actions.match_caller),
        {"contact_id": (_whole_number, True), "save_number": (_true_or_false, False)},
    ),
    "move_phase": ApiAction(actions.move_phase, {"phase": (_text, True)}),
    "close": ApiAction(functools.partial(actions.move_phase, phase=PHASES.final), {}),
    "set_estimate": ApiAction(actions.set_restore_estimate, {"when": (_moment, True)}),
    "assign": ApiAction(actions.assign, {"technician_id": (_whole_number, True), "skill": (_optional_text, False)}),
    "escalate": ApiAction(
        actions.escalate_to_vendor,
        {"vendor": (_text, True), "reference": (_text, True), "restore_at": (_moment, True)},
    ),
    "lend_device": ApiAction(_under_sla_table(actions.lend_device), {"device": (_text, True)}),
    "return_device": ApiAction(actions.return_device, {}),
    "add_note": ApiAction(actions.add_note, {"text": (_text, True)}),
    "reply": ApiAction(actions.reply, {"text": (_text, True)}),
}
ACTING_AS = "as"  # the body's field naming who acts: the email of an active user


@bp.post("/tickets/<number>/actions/<action>")
@token_required
def ticket_action(number: str, action: str) -> Any:
    """Take `action` on ticket `number` as the user the JSON body's "as" names, with the body's fields; one transaction.

    200 with the ticket; 400 {"field", "code", "error"} for input or a rule that refuses it
    (`error` in `lang`, Italian by default); 403 when the user's role may not; 404 for an
    unknown ticket or action.
    """
    offered = API_ACTIONS.get(action)
    if offered is None:
        return jsonify(error=f"no action {action!r}: one of {', '.join(sorted(API_ACTIONS))}"), 404
    language = request.args.get("lang", "it")
    session = db_session()
    try:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ActionRefused(None, "not_a_json_object")
        actor = _acting_user(session, body.get(ACTING_AS))
        found = get_ticket_for_update(session, number)
        if found is None:
            session.rollback()
            return jsonify(error="no ticket with that number"), 404
        offered.run(session, found, actor, **_arguments(offered, body))
    except ActionForbidden as forbidden:
        session.rollback()
        return jsonify(code=forbidden.message, error=forbidden.words(language)), 403
    except ActionRefused as refused:
        session.rollback()
        return jsonify(field=refused.field, code=refused.message, error=refused.words(language)), 400
    session.commit()
    return jsonify(ticket_json(found, language))


def _acting_user(session: Session, address: Any) -> User:
    """The active user the body names; refused when none is named or the address is no active user's."""
    if address is None:
        raise ActionRefused(ACTING_AS, "required")
    user = get_user_by_email(session, _text(ACTING_AS, address))
    if user is None or not user.active:
        raise ActionRefused(ACTING_AS, "unknown_user")
    return user


def _arguments(offered: ApiAction, body: Mapping[str, Any]) -> dict[str, Any]:
    """The action's arguments from the body: each field parsed, a required one present, no field it does not take."""
    for name in body:
        if name != ACTING_AS and name not in offered.fields:
            raise ActionRefused(name, "unknown_field")
    arguments = {}
    for name, (parse, required) in offered.fields.items():
        if name in body:
            arguments[name] = parse(name, body[name])
        elif required:
            raise ActionRefused(name, "required")
    return arguments
