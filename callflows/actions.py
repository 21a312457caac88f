"""What the support line's steps do: identify, remember, open the ticket; and what "@name" prompts say.

Each action takes the turn (the stored call, the session, the request form). Side effects
also take the route's argument; deciders return the event of a Branch; checkers take the
typed digits and return the event of an Entry. Speakers return what a prompt's "@name" item says.

Only the caller ID Twilio reports identifies a caller (`identify_caller`). A number or a
customer code typed on the keypad is noted for a dispatcher to confirm: it names no
company on the line, opens no one's tickets, and sends no email to the customer's people.
"""

from __future__ import annotations

import prompts
from callflows import status
from callflows.engine import Checker, Decider, SideEffect, Speaker, Turn, seconds
from helpdesk import intake, oncall
from prompts import Speech
from storage.contacts import get_customer_by_code, identify_by_phone
from storage.phones import to_e164

# -- side effects ----------------------------------------------------------------------------


def set_language(turn: Turn, language: object) -> None:
    turn.set_language(str(language))


def greet(turn: Turn, _: object) -> None:
    """Hello with the company's name: for a caller identified by caller ID only."""
    call = turn.call
    if call.contact_id is not None and call.company is not None:
        turn.say("greeting_known", company=call.company.rstrip("."))


def set_severity(turn: Turn, severity: object) -> None:
    turn.db.change(severity=int(str(severity)))


def keep_recording(turn: Turn, _: object) -> None:
    """Remember the recording just made (the one the caller may confirm)."""
    turn.db.change(
        recording_sid=turn.form.get("RecordingSid") or None,
        recording_url=turn.form.get("RecordingUrl") or None,
        recording_duration=seconds(turn.form.get("RecordingDuration")),
    )


def forget_recording(turn: Turn, _: object) -> None:
    turn.db.change(recording_sid=None, recording_url=None, recording_duration=None)


def open_ticket(turn: Turn, kind: object) -> None:
    """Open the call's ticket (once); `kind` "voicemail" when the caller did not confirm on the line."""
    voicemail = kind == "voicemail"
    call = turn.call
    opened = intake.open_ticket_of_call(
        turn.db.transaction,
        call,
        call.customer_sla,
        voicemail=voicemail,
        opened_by="voicemail" if voicemail else "line",
        table=turn.sla_table,
        alerts=bool(turn.db.session_info.get(oncall.ALERTS)),
    )
    call.ticket_number, call.ticket_recording_sid = opened.number, opened.recording_sid


# -- deciders --------------------------------------------------------------------------------


def identify_caller(turn: Turn) -> str:
    """known, unknown or withheld: the caller ID looked up in the directory (the only way to identify a caller)."""
    call = turn.call
    if call.caller is None:
        return "withheld"
    identity = identify_by_phone(turn.db.connection, call.caller)
    if identity is None:
        return "unknown"
    call.contact_id, call.customer_id = identity.contact_id, identity.customer_id
    call.company, call.customer_sla = identity.company, identity.sla
    return "known"


def business_hours(turn: Turn) -> str:
    """open, closed, or nobody (open, but no on-call number is set)."""
    if not turn.is_open():
        return "closed"
    return "open" if turn.dial_number else "nobody"


# -- checkers --------------------------------------------------------------------------------


def check_callback_number(turn: Turn, digits: str) -> str:
    """A withheld caller's callback number: invalid, or noted (and the caller stays unknown).

    When the number is a contact's, the contact is only a suggestion for the dispatcher:
    whoever typed it may not be that person.
    """
    number = to_e164(digits)
    if number is None:
        return "invalid"
    call = turn.call
    call.callback_number = number
    suggested = identify_by_phone(turn.db.connection, number)
    call.suggested_contact_id = suggested.contact_id if suggested else None
    turn.say("callback_number_noted", number=prompts.spoken_phone(number))
    return "unknown"


def check_customer_code(turn: Turn, digits: str) -> str:
    """A code typed by a caller the caller ID did not identify: the customer, provisionally, without its name."""
    customer = get_customer_by_code(turn.session, digits)
    if customer is None:
        return "unknown_code"
    turn.call.customer_id = customer.id  # provisional: the ticket needs a dispatcher's match (no contact, needs_match)
    turn.say("customer_code_noted")
    return "linked"


# -- speakers ------------------------------------------------------------------------------


def language_offer(turn: Turn) -> Speech:
    """The offer of English, said in the English voice whatever the call's language."""
    english = prompts.catalogue("en")
    return [(english.text("language_offer"), english)]  # type: ignore[list-item]


def ticket_number(turn: Turn) -> Speech:
    return prompts.spoken_digits(turn.call.ticket_number or "")


def next_steps(turn: Turn) -> Speech:
    call = turn.call
    catalogue = prompts.catalogue(turn.language)
    if call.ticket_id is not None and call.ticket_recording_sid is None:
        return [catalogue.text("ticket_no_audio")]
    if call.contact_id is None:  # not identified by caller ID: no confirmation email, a dispatcher calls back
        return [catalogue.text("ticket_next_steps_unregistered")]
    return [catalogue.text("ticket_next_steps")]


SIDE_EFFECTS: dict[str, SideEffect] = {
    "set_language": set_language,
    "greet": greet,
    "set_severity": set_severity,
    "keep_recording": keep_recording,
    "forget_recording": forget_recording,
    "open_ticket": open_ticket,
    "next_own_ticket": status.next_own_ticket,
    "choose_own_ticket": status.choose_own_ticket,
    "keep_voice_message": status.keep_voice_message,
}

DECIDERS: dict[str, Decider] = {
    "identify_caller": identify_caller,
    "business_hours": business_hours,
    "status_entry": status.status_entry,
}

CHECKERS: dict[str, Checker] = {
    "check_callback_number": check_callback_number,
    "check_customer_code": check_customer_code,
    "check_ticket_number": status.check_ticket_number,
    "check_status_pin": status.check_status_pin,
}

# Actions that change nothing stored: a route through them alone reads without locking.
PURE = frozenset({"greet", "business_hours", "status_entry", "next_own_ticket"})

SPEAKERS: dict[str, Speaker] = {
    "language_offer": language_offer,
    "ticket_number": ticket_number,
    "next_steps": next_steps,
    "my_tickets": status.my_tickets,
    "ticket_status": status.ticket_status,
}
