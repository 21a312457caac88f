"""What a dispatcher or a technician does to a ticket: one function per action, for the console and the API alike.

Each action runs in the caller's transaction, on a ticket whose row the caller has locked
(storage.tickets.get_ticket_for_update), and the caller commits once. It asks
helpdesk.roles whether the person may act, then checks its input and the ticket, and
either refuses, having changed nothing, or changes the ticket and writes one thread
entry with the person's id; the first action on a ticket stops its SLA response clock, the
move to resolved its restore clock, and a change of urgency or of the caller's customer
counts its deadlines again, which its entry then says (helpdesk.deadlines). Its emails are
queued as rows in the same transaction (helpdesk.notices); the worker sends them.

A refusal is data, like a thread entry: `ActionRefused(field, message, **facts)`, where
`field` is the parameter of the action it is about (the API's JSON field of the same
name; None when it is about the ticket as a whole), `message` a code, and `facts` what
the words need. `refusal.words(language)` says it in Italian or English, from the
[refusals] of helpdesk/thread_<lang>.toml. `ActionForbidden`, a refusal too, means the
person's role may not take the action on this ticket (the API answers 403).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from helpdesk import deadlines, notices, oncall, sla, thread
from helpdesk.phases import OPEN_PHASES, PHASES, can_move
from helpdesk.roles import may_act, phase_action
from storage.models import Contact, Ticket, TicketEvent, User, utcnow
from storage.tickets import URGENCIES, record_action, reopen_follow_up
from storage.users import TECHNICIAN

# The longest texts the actions keep (the columns' widths; the console's forms say the same).
REASON_LIMIT = 500
VENDOR_LIMIT = 200
REFERENCE_LIMIT = 100
DEVICE_LIMIT = 200
SKILL_LIMIT = 50
TEXT_LIMIT = 5000  # a note or a reply

RESOLVED = "resolved"  # the phase whose entry sets resolved_at (and whose leaving, back to work, clears it)


class ActionRefused(Exception):
    """An action refused, having changed nothing: the parameter it is about (None: the ticket), a code, its facts."""

    def __init__(self, field: str | None, message: str, **facts: object):
        super().__init__(f"{field or 'ticket'}: {message}" + (f" {facts}" if facts else ""))
        self.field = field
        self.message = message  # the code of its words in [refusals]
        self.facts = facts

    def words(self, language: str) -> str:
        """Why, in `language` (Italian when the language has no words for it)."""
        return thread.refusal(self.message, self.facts, language)


class ActionForbidden(ActionRefused):
    """The person's role may not take this action on this ticket (helpdesk.roles)."""

    def __init__(self, action: str):
        super().__init__(None, "not_permitted", action=action)
        self.action = action


def set_urgency(
    session: Session, ticket: Ticket, actor: User, urgency: str, reason: str = "", *, table: sla.SlaTable | None = None
) -> TicketEvent:
    """Confirm the urgency (the same one) or change it, with a reason (required to change it); a person has answered.

    A change counts the SLA deadlines again from the opening, with `table` (the SLA table in
    force; None reads the default), and the entry says the new ones. A ticket made critical is
    alerted to the on-call technician (helpdesk.oncall), once.
    """
    _allow(actor, ticket, "change_urgency")
    _still_open(ticket)
    if urgency not in URGENCIES:
        raise ActionRefused("urgency", "unknown_urgency", urgency=str(urgency))
    why = _text("reason", reason, REASON_LIMIT, required=False)
    facts: dict[str, object] = {"urgency": urgency}
    if urgency != ticket.urgency:
        if not why:
            raise ActionRefused("reason", "reason_required")
        facts["from"] = ticket.urgency
    if why:
        facts["reason"] = why
    table = table or sla.load()
    before = deadlines.due(ticket, table)
    ticket.urgency = urgency
    ticket.urgency_confirmed_at = utcnow()
    facts.update(deadlines.count(ticket, table, before))
    event = _record(session, ticket, actor, "urgency_set", **facts)
    oncall.alert_if_critical(session, ticket, table)  # made critical now: the on-call technician is told, once
    return event


def match_caller(
    session: Session,
    ticket: Ticket,
    actor: User,
    contact_id: int,
    save_number: bool = False,
    *,
    table: sla.SlaTable | None = None,
) -> TicketEvent:
    """Match an unregistered or withheld caller to a contact (and its customer), optionally saving the number.

    The saved number is the caller ID, else the callback number the caller typed; it
    replaces the contact's (a contact has one). The confirmation and the referents'
    copies then go out as for a caller recognised on the line: the ticket's follow-up
    runs again and queues them (once each, keyed `confirmation:<ticket id>`), with the
    transcript when it is ready. The caller's level now being the customer's, the SLA
    deadlines are counted again from the opening (`table`, the SLA table in force; None reads
    the default), and the entry says the new ones when they moved.
    """
    _allow(actor, ticket, "match_caller")
    _still_open(ticket)
    if not ticket.needs_match:
        raise ActionRefused("contact_id", "already_matched")
    contact = session.get(Contact, contact_id) if _whole(contact_id) else None
    if contact is None:
        raise ActionRefused("contact_id", "unknown_contact")
    number = ticket.caller or ticket.callback_number
    if save_number and number is None:
        raise ActionRefused("save_number", "no_number_to_save")
    facts: dict[str, object] = {"contact": contact.name, "contact_id": contact.id, "customer": contact.customer.name}
    if save_number and number is not None and number != contact.phone:
        facts["number_saved"], facts["previous_phone"] = number, contact.phone
        contact.phone = number
    table = table or sla.load()
    before = deadlines.due(ticket, table)
    ticket.customer, ticket.contact, ticket.needs_match = contact.customer, contact, False
    facts.update(deadlines.count(ticket, table, before))
    event = _record(session, ticket, actor, "caller_matched", **facts)
    reopen_follow_up(session, ticket)
    return event


def move_phase(session: Session, ticket: Ticket, actor: User, phase: str) -> TicketEvent:
    """Move the ticket to `phase`, if helpdesk.phases allows the move; entering resolved or closed is timed.

    Entering resolved stops the SLA restore clock; going back to work from it starts it again.

    A ticket is not closed while a courtesy device is still out with the customer.
    """
    _allow(actor, ticket, phase_action(phase))
    if phase not in PHASES.phases:
        raise ActionRefused("phase", "unknown_phase", phase=str(phase))
    current = ticket.status
    if not can_move(current, phase):
        raise ActionRefused("phase", "phase_move_forbidden", **{"from": current, "to": phase})
    if phase == PHASES.final and _device_out(ticket):
        raise ActionRefused("phase", "device_not_returned", device=ticket.courtesy_device)
    now = utcnow()
    ticket.status = phase
    if phase == RESOLVED:
        ticket.resolved_at = ticket.restored_at = now
    elif phase == PHASES.final:
        ticket.closed_at = now
    elif current == RESOLVED:
        # back to work: it is not resolved, nor service restored, any more (the thread keeps when it was)
        ticket.resolved_at = ticket.restored_at = None
    return _record(session, ticket, actor, "phase_moved", **{"from": current, "to": phase})


def set_restore_estimate(session: Session, ticket: Ticket, actor: User, when: datetime) -> TicketEvent:
    """Set the estimated restore time (in the future), and email it to the contact, the referents in Cc.

    A new email for each new estimate, in the ticket's language, the time on the help
    desk's clock; a caller not matched to a contact yet gets none (the thread says so).
    """
    _allow(actor, ticket, "set_estimate")
    _still_open(ticket)
    moment = _future("when", when)
    previous = ticket.estimated_restore_at
    if previous == moment:
        raise ActionRefused("when", "estimate_unchanged")
    facts: dict[str, object] = {"at": moment.isoformat()}
    if previous is not None:
        facts["previous"] = previous.isoformat()
    if notices.recipients(ticket) is None:
        facts["unmatched"] = True
    ticket.estimated_restore_at = moment
    event = _record(session, ticket, actor, "restore_estimated", **facts)
    session.flush()  # the entry's id keys its email
    draft = notices.estimate_notice(ticket, event.id, moment, previous)
    if draft is not None:
        notices.queue(session, draft, ticket)
    return event


def assign(session: Session, ticket: Ticket, actor: User, technician_id: int, skill: str | None = None) -> TicketEvent:
    """Give the ticket to an active technician; with `skill`, the ticket needs it and the technician must have it.

    Re-assigning says on the thread who had it before.
    """
    _allow(actor, ticket, "assign")
    _still_open(ticket)
    technician = session.get(User, technician_id) if _whole(technician_id) else None
    if technician is None or not technician.active or technician.role != TECHNICIAN:
        raise ActionRefused("technician_id", "not_a_technician")
    wanted = _text("skill", skill, SKILL_LIMIT, required=False).lower() if skill is not None else ""
    if wanted and wanted not in technician.skill_set:
        raise ActionRefused("technician_id", "lacks_skill", technician=technician.name, skill=wanted)
    if technician.id == ticket.technician_id and wanted in ("", ticket.skill_needed):
        raise ActionRefused("technician_id", "already_assigned", technician=technician.name)
    facts: dict[str, object] = {"to": technician.name, "to_id": technician.id}
    previous = ticket.technician
    if previous is not None and previous.id != technician.id:
        facts["from"], facts["from_id"] = previous.name, previous.id
    if wanted:
        facts["skill"] = wanted
        ticket.skill_needed = wanted
    ticket.technician = technician
    return _record(session, ticket, actor, "assigned", **facts)


def escalate_to_vendor(
    session: Session, ticket: Ticket, actor: User, vendor: str, reference: str, restore_at: datetime
) -> TicketEvent:
    """Hand the ticket to an external vendor: its name, its reference, and the restore time it promised."""
    _allow(actor, ticket, "escalate")
    _still_open(ticket)
    name = _text("vendor", vendor, VENDOR_LIMIT)
    their_reference = _text("reference", reference, REFERENCE_LIMIT)
    promised = _future("restore_at", restore_at)
    ticket.vendor_name, ticket.vendor_reference, ticket.vendor_restore_at = name, their_reference, promised
    facts = {"vendor": name, "reference": their_reference, "restore_at": promised.isoformat()}
    return _record(session, ticket, actor, "escalated", **facts)


def lend_device(
    session: Session, ticket: Ticket, actor: User, device: str, *, table: sla.SlaTable | None = None
) -> TicketEvent:
    """Record a courtesy device lent to the customer, where the customer's SLA level includes one.

    `table` is the SLA table in force (helpdesk.sla.load(settings.sla_table)); None reads
    the default, helpdesk/sla.toml.
    """
    _allow(actor, ticket, "lend_device")
    _still_open(ticket)
    name = _text("device", device, DEVICE_LIMIT)
    if _device_out(ticket):
        raise ActionRefused("device", "device_already_lent", device=ticket.courtesy_device)
    if ticket.needs_match or ticket.customer is None:
        raise ActionRefused("device", "customer_not_confirmed")
    level = ticket.customer.sla
    if not (table or sla.load()).includes(level, "courtesy_device"):
        raise ActionRefused("device", "not_in_sla", level=level)
    ticket.courtesy_device, ticket.courtesy_lent_at, ticket.courtesy_returned_at = name, utcnow(), None
    return _record(session, ticket, actor, "device_lent", device=name)


def return_device(session: Session, ticket: Ticket, actor: User) -> TicketEvent:
    """Record that the customer gave the courtesy device back."""
    _allow(actor, ticket, "return_device")
    if not _device_out(ticket):
        raise ActionRefused(None, "no_device_lent")
    ticket.courtesy_returned_at = utcnow()
    return _record(session, ticket, actor, "device_returned", device=ticket.courtesy_device)


def add_note(session: Session, ticket: Ticket, actor: User, text: str) -> TicketEvent:
    """An internal note on the thread, said as written; never emailed."""
    _allow(actor, ticket, "add_note")
    return _record(session, ticket, actor, "note", note=_text("text", text, TEXT_LIMIT))


def reply(session: Session, ticket: Ticket, actor: User, text: str) -> TicketEvent:
    """A reply emailed to the contact, the referents in Cc, the ticket number in the subject; on the thread as sent."""
    _allow(actor, ticket, "reply")
    words = _text("text", text, TEXT_LIMIT)
    recipients = notices.recipients(ticket)
    if recipients is None:
        raise ActionRefused(None, "no_contact")
    contact, copied = recipients
    facts: dict[str, object] = {"text": words, "to": contact.email}
    if copied:
        facts["cc"] = ", ".join(copied)
    event = _record(session, ticket, actor, "reply", **facts)
    session.flush()  # the entry's id keys its email
    draft = notices.reply_notice(ticket, event.id, words)
    if draft is not None:
        notices.queue(session, draft, ticket)
    return event


# -- the checks every action shares ------------------------------------------------------------


def _allow(actor: User, ticket: Ticket, action: str) -> None:
    if not may_act(actor, ticket, action):
        raise ActionForbidden(action)


def _still_open(ticket: Ticket) -> None:
    """Work on the ticket (urgency, estimate, people, vendor, device) needs it open."""
    if ticket.status not in OPEN_PHASES:
        raise ActionRefused(None, "ticket_not_open", phase=ticket.status)


def _text(field: str, value: object, limit: int, *, required: bool = True) -> str:
    """The text without its surrounding spaces; refused when it is no text, empty (if required) or too long."""
    if not isinstance(value, str):
        raise ActionRefused(field, "not_text")
    text = value.strip()
    if required and not text:
        raise ActionRefused(field, "required")
    if len(text) > limit:
        raise ActionRefused(field, "too_long", limit=limit)
    return text


def _future(field: str, value: object) -> datetime:
    """A moment with its time zone, still to come, in UTC."""
    if not isinstance(value, datetime):
        raise ActionRefused(field, "not_a_time")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ActionRefused(field, "time_zone_required")
    if value <= utcnow():
        raise ActionRefused(field, "not_in_future")
    return value.astimezone(UTC)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _device_out(ticket: Ticket) -> bool:
    return ticket.courtesy_device is not None and ticket.courtesy_returned_at is None


def _record(session: Session, ticket: Ticket, actor: User, kind: str, **facts: object) -> TicketEvent:
    event = record_action(session, ticket, actor, kind, **facts)
    deadlines.record_response(ticket, event.at)  # any action of a person answers the ticket
    return event
