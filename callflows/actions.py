"""What the support line's steps do on the way: identify, remember, open the ticket.

Each action takes the turn (the stored call, the session, the request form) and the
route's argument. Speakers return what a prompt's "@name" item says.

Only the caller ID Twilio reports identifies a caller (`identify_caller`). A number or a
customer code typed on the keypad is noted for a dispatcher to confirm: it names no
company on the line, opens no one's tickets, and sends no email to the customer's people.
"""

from __future__ import annotations

import prompts
from callflows import status
from callflows.engine import Action, Speaker, Turn, seconds
from helpdesk.urgency import provisional_urgency
from prompts import Speech
from storage.contacts import get_contact_by_phone, get_customer_by_code
from storage.models import Call
from storage.phones import to_e164
from storage.tickets import open_ticket_for_call


def _call(turn: Turn) -> Call:
    call = turn.call
    assert isinstance(call, Call)
    return call


def set_language(turn: Turn, language: object) -> None:
    _call(turn).language = str(language)


def identify_caller(turn: Turn, _: object) -> str:
    """known, unknown or withheld: the caller ID looked up in the directory (the only way to identify a caller)."""
    call = _call(turn)
    if call.caller is None:
        return "withheld"
    contact = get_contact_by_phone(turn.session, call.caller)
    if contact is None:
        return "unknown"
    call.contact, call.customer = contact, contact.customer
    return "known"


def greet(turn: Turn, _: object) -> None:
    """Hello with the company's name: for a caller identified by caller ID only."""
    contact = _call(turn).contact
    if contact is not None:
        turn.say("greeting_known", company=contact.customer.name.rstrip("."))


def check_callback_number(turn: Turn, digits: object) -> str:
    """A withheld caller's callback number: invalid, or noted (and the caller stays unknown).

    When the number is a contact's, the contact is only a suggestion for the dispatcher:
    whoever typed it may not be that person.
    """
    number = to_e164(str(digits))
    if number is None:
        return "invalid"
    call = _call(turn)
    call.callback_number = number
    call.suggested_contact = get_contact_by_phone(turn.session, number)
    turn.say("callback_number_noted", number=prompts.spoken_phone(number))
    return "unknown"


def check_customer_code(turn: Turn, digits: object) -> str:
    """A code typed by a caller the caller ID did not identify: the customer, provisionally, without its name."""
    customer = get_customer_by_code(turn.session, str(digits))
    if customer is None:
        return "unknown_code"
    call = _call(turn)
    call.customer = customer  # provisional: the ticket needs a dispatcher's match (no contact, needs_match)
    turn.say("customer_code_noted")
    return "linked"


def set_severity(turn: Turn, severity: object) -> None:
    _call(turn).severity = int(str(severity))


def keep_recording(turn: Turn, _: object) -> None:
    """Remember the recording just made (the one the caller may confirm)."""
    call = _call(turn)
    call.recording_sid = turn.form.get("RecordingSid") or None
    call.recording_url = turn.form.get("RecordingUrl") or None
    call.recording_duration = seconds(turn.form.get("RecordingDuration"))


def forget_recording(turn: Turn, _: object) -> None:
    call = _call(turn)
    call.recording_sid = call.recording_url = None
    call.recording_duration = None


def sla_of_verified_customer(call: Call) -> str | None:
    """The SLA that may raise a new ticket's urgency: the customer of the contact known by caller ID.

    A customer code typed on the keypad is a claim, and claims do not buy urgency.
    """
    return call.contact.customer.sla if call.contact is not None else None


def opening_urgency(call: Call) -> str:
    """The provisional urgency of the call's ticket: the caller's triage with the verified customer's SLA."""
    return provisional_urgency(call.severity, sla_of_verified_customer(call))


def open_ticket(turn: Turn, kind: object) -> None:
    """Open the call's ticket (once); `kind` "voicemail" when the caller did not confirm on the line."""
    call = _call(turn)
    voicemail = kind == "voicemail"
    open_ticket_for_call(
        turn.session,
        call,
        opening_urgency(call),
        voicemail=voicemail,
        opened_by="a message left on the line" if voicemail else "the caller on the line",
    )


def business_hours(turn: Turn, _: object) -> str:
    """open, closed, or nobody (open, but no on-call number is set)."""
    if not turn.is_open():
        return "closed"
    return "open" if turn.dial_number else "nobody"


def language_offer(turn: Turn) -> Speech:
    """The offer of English, said in the English voice whatever the call's language."""
    english = prompts.catalogue("en")
    return [(english.text("language_offer"), english)]  # type: ignore[list-item]


def ticket_number(turn: Turn) -> Speech:
    ticket = _call(turn).ticket
    return prompts.spoken_digits(ticket.number or "") if ticket else []


def next_steps(turn: Turn) -> Speech:
    call = _call(turn)
    catalogue = prompts.catalogue(call.language)
    if call.ticket is not None and call.ticket.recording_sid is None:
        return [catalogue.text("ticket_no_audio")]
    if call.contact is None:  # not identified by caller ID: no confirmation email, a dispatcher calls back
        return [catalogue.text("ticket_next_steps_unregistered")]
    return [catalogue.text("ticket_next_steps")]


ACTIONS: dict[str, Action] = {
    "set_language": set_language,
    "identify_caller": identify_caller,
    "greet": greet,
    "check_callback_number": check_callback_number,
    "check_customer_code": check_customer_code,
    "set_severity": set_severity,
    "keep_recording": keep_recording,
    "forget_recording": forget_recording,
    "open_ticket": open_ticket,
    "business_hours": business_hours,
    "status_entry": status.status_entry,
    "next_own_ticket": status.next_own_ticket,
    "choose_own_ticket": status.choose_own_ticket,
    "check_ticket_number": status.check_ticket_number,
    "check_status_pin": status.check_status_pin,
    "keep_voice_message": status.keep_voice_message,
}

SPEAKERS: dict[str, Speaker] = {
    "language_offer": language_offer,
    "ticket_number": ticket_number,
    "next_steps": next_steps,
    "my_tickets": status.my_tickets,
    "ticket_status": status.ticket_status,
}
