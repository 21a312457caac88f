"""The JSON API for dispatchers and tools: tickets by number and by caller, behind a bearer token."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, jsonify, request

from callflows.status import status_speech
from ivr.db import db_session
from storage.models import Ticket, utcnow
from storage.phones import to_e164
from storage.pins import pin_matches
from storage.ticket_numbers import is_valid
from storage.tickets import caller_may_hear, get_ticket_by_number, get_tickets_of_caller

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
    return jsonify(ticket_json(found))


@bp.get("/tickets/<number>/status")
@token_required
def ticket_status(number: str) -> Any:
    """What the line would read to `caller` (E.164) about ticket `number`, under the same rule:
    the caller is a contact of the ticket's customer (or opened it), or gives the customer's `pin`."""
    settings = current_app.config["SETTINGS"]
    session = db_session()
    caller = to_e164(request.args.get("caller", ""))
    found = get_ticket_by_number(session, number) if is_valid(number) else None
    allowed = found is not None and (
        caller_may_hear(session, found, caller)
        or pin_matches(request.args.get("pin", ""), found.customer.pin_hash if found.customer else None)
    )
    if found is None or not allowed:
        # One answer for unknown and not-yours: the API tells no more than the line.
        return jsonify(error="no ticket with that number that this caller may hear about"), 404
    language = request.args.get("lang", "it")
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


@bp.get("/tickets")
@token_required
def tickets_of_caller() -> Any:
    caller = to_e164(request.args.get("caller", ""))
    if caller is None:
        return jsonify(error="caller must be a phone number, in E.164 like +390392847438"), 400
    return jsonify(tickets=[ticket_json(t) for t in get_tickets_of_caller(db_session(), caller)])


def ticket_json(ticket: Ticket) -> dict[str, Any]:
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
        "events": [{"kind": e.kind, "at": e.at.isoformat(), "text": e.text} for e in ticket.events],
    }
