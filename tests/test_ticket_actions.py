"""The actions on a ticket (issue 9, point 4), at the rules' level: each one changes the ticket and writes one
thread entry with who did it, or is refused with its field and code and changes nothing; emails reach a real
SMTP server through the worker's jobs."""

from __future__ import annotations

import ast
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import prompts
from helpdesk import actions, notices, sla, thread
from helpdesk.actions import ActionForbidden, ActionRefused
from storage.contacts import get_contact_by_phone
from storage.models import Call, Contact, Email, Ticket, TicketEvent, User, utcnow
from storage.tickets import EVENT_KINDS, get_ticket_for_update, open_ticket_for_call
from tests.conftest import ANNA, DISPATCH, GIULIA, STRANGER

pytestmark = pytest.mark.usefixtures("directory")

PROJECT = Path(__file__).resolve().parent.parent
ROME = ZoneInfo("Europe/Rome")
GIULIA_EMAIL = "giulia.rossi@brambilla.example.it"  # Officine Brambilla (premium)
MARCO_EMAIL = "marco.bianchi@brambilla.example.it"  # its referent
ANNA_EMAIL = "anna@studioverdi.example.it"  # Studio Verdi (base), its own referent

# One entry of each kind the actions write, with the facts they record (tests/test_thread.py's EXAMPLES want these).
ACTION_EXAMPLES: dict[str, dict[str, object]] = {
    "urgency_set": {"urgency": "critical", "from": "normal", "reason": "Server fermo, confermato al telefono"},
    "caller_matched": {
        "contact": "Giulia Rossi",
        "contact_id": 1,
        "customer": "Officine Brambilla",
        "number_saved": STRANGER,
        "previous_phone": GIULIA,
    },
    "phase_moved": {"from": "triage", "to": "diagnostics"},
    "restore_estimated": {"at": "2026-12-01T13:30:00+00:00", "previous": "2026-12-01T09:00:00+00:00"},
    "assigned": {"to": "Luca Ferrari", "to_id": 2, "from": "Sara Neri", "from_id": 3, "skill": "network"},
    "escalated": {"vendor": "Stampanti SpA", "reference": "ST-4711", "restore_at": "2026-12-02T08:00:00+00:00"},
    "device_lent": {"device": "Notebook di cortesia NB-07"},
    "device_returned": {"device": "Notebook di cortesia NB-07"},
    "reply": {"text": "Passiamo domattina.", "to": GIULIA_EMAIL, "cc": MARCO_EMAIL},
}


@dataclass(frozen=True)
class People:
    """The help desk's people: their user ids."""

    dora: int  # a dispatcher
    luca: int  # a technician: network, printers
    sara: int  # a technician: windows
    gino: int  # a technician whose account is disabled


@pytest.fixture
def people(app) -> People:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session, session.begin():
        users = [
            User(name="Dora Esposito", email="dora@helpdesk.example.it", role="dispatcher"),
            User(name="Luca Ferrari", email="luca@helpdesk.example.it", role="technician", skills="network,printers"),
            User(name="Sara Neri", email="sara@helpdesk.example.it", role="technician", skills="windows"),
            User(
                name="Gino Bassi", email="gino@helpdesk.example.it", role="technician", skills="network", active=False
            ),
        ]
        session.add_all(users)
        session.flush()
        return People(*(user.id for user in users))


def open_ticket(
    app, caller: str | None = GIULIA, *, callback: str | None = None, language: str = "it", **changes
) -> str:  # type: ignore[no-untyped-def]
    """A ticket opened on the line by `caller` (recognised when in the directory; None: withheld); its number."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        call = Call(call_sid="CA" + uuid.uuid4().hex, caller=caller, callback_number=callback, language=language)
        call.attempts = 0
        call.contact = get_contact_by_phone(session, caller) if caller else None
        call.customer = call.contact.customer if call.contact else None
        session.add(call)
        session.flush()
        ticket = open_ticket_for_call(session, call, "normal", voicemail=False, opened_by="line")
        for name, value in changes.items():
            setattr(ticket, name, value)
        return ticket.number or ""


@dataclass(frozen=True)
class Done:
    """What an action wrote: its thread entry."""

    kind: str
    facts: dict[str, Any]
    user_id: int | None


def act(app, number: str, user_id: int, action: Callable[..., TicketEvent], *args: Any, **kwargs: Any) -> Done:  # type: ignore[no-untyped-def]
    """Take the action as the user, in one transaction, as the console and the API do."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = get_ticket_for_update(session, number)
        event = action(session, ticket, session.get(User, user_id), *args, **kwargs)
        session.flush()
        return Done(event.kind, dict(event.facts), event.user_id)


def refused(
    app, number: str, user_id: int, action: Callable[..., TicketEvent], *args: Any, **kwargs: Any
) -> ActionRefused:  # type: ignore[no-untyped-def]
    """The action's refusal; it changed nothing, not even before the caller rolls back."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = get_ticket_for_update(session, number)
        assert ticket is not None
        with unchanged(session, ticket), pytest.raises(ActionRefused) as refusal:
            action(session, ticket, session.get(User, user_id), *args, **kwargs)
        return refusal.value


@contextmanager
def unchanged(session: Session, ticket: Ticket) -> Iterator[None]:
    before = columns(ticket), len(ticket.events), [c.phone for c in session.scalars(select(Contact))]
    emails = session.scalar(select(func.count()).select_from(Email))
    yield
    assert not session.new and not [row for row in session.dirty if session.is_modified(row)]
    assert (columns(ticket), len(ticket.events), [c.phone for c in session.scalars(select(Contact))]) == before
    assert session.scalar(select(func.count()).select_from(Email)) == emails


def columns(ticket: Ticket) -> dict[str, object]:
    return {column.key: getattr(ticket, column.key) for column in Ticket.__table__.columns}


def the_ticket(app, number: str) -> Ticket:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        _ = ticket.events, ticket.technician, ticket.contact, ticket.customer
        return ticket


def said(done: Done, language: str = "it") -> str:
    return thread.render_facts(done.kind, done.facts, language)


def rome(days: int = 1, hour: int = 10, minute: int = 30) -> datetime:
    """A wall-clock time in Rome, `days` from today."""
    return (datetime.now(ROME) + timedelta(days=days)).replace(hour=hour, minute=minute, second=0, microsecond=0)


# -- the urgency ------------------------------------------------------------------------------


def test_confirming_the_urgency_needs_no_reason_and_marks_the_ticket_answered(app, people):
    number = open_ticket(app)
    done = act(app, number, people.dora, actions.set_urgency, "normal", "")
    assert done == Done("urgency_set", {"urgency": "normal"}, people.dora)
    assert said(done) == "Urgenza normale confermata." and said(done, "en") == "Urgency normal confirmed."
    ticket = the_ticket(app, number)
    assert ticket.urgency == "normal" and ticket.urgency_confirmed_at is not None
    assert ticket.events[-1].user_id == people.dora


def test_changing_the_urgency_needs_a_reason(app, people):
    number = open_ticket(app)
    refusal = refused(app, number, people.dora, actions.set_urgency, "critical", "   ")
    assert (refusal.field, refusal.message) == ("reason", "reason_required")
    assert refusal.words("it") == "Per cambiare l'urgenza serve un motivo."
    assert refusal.words("en") == "Changing the urgency needs a reason."
    done = act(app, number, people.dora, actions.set_urgency, "critical", " Server fermo ")
    ticket = the_ticket(app, number)
    assert ticket.urgency == "critical"
    # premium, critical: 15 and 240 minutes from the opening (tests/test_sla_clock.py says more)
    assert ticket.response_due_at == ticket.created_at + timedelta(minutes=15)
    assert ticket.restore_due_at == ticket.created_at + timedelta(minutes=240)
    new_deadlines = {key: datetime.fromisoformat(done.facts.pop(key)) for key in ("response_due", "restore_due")}
    assert new_deadlines == {"response_due": ticket.response_due_at, "restore_due": ticket.restore_due_at}
    assert done.facts == {"urgency": "critical", "from": "normal", "reason": "Server fermo"}
    assert said(done) == "Urgenza cambiata da normale a critica. Motivo: «Server fermo»."
    assert said(done, "en") == 'Urgency changed from normal to critical. Reason: "Server fermo".'


def test_an_unknown_urgency_or_a_reason_too_long_is_refused(app, people):
    number = open_ticket(app)
    refusal = refused(app, number, people.dora, actions.set_urgency, "apocalyptic", "why")
    assert (refusal.field, refusal.message, refusal.facts) == ("urgency", "unknown_urgency", {"urgency": "apocalyptic"})
    refusal = refused(app, number, people.dora, actions.set_urgency, "high", "x" * 501)
    assert (refusal.field, refusal.message) == ("reason", "too_long")
    assert refusal.words("it") == "Al massimo 500 caratteri."


def test_a_closed_ticket_takes_no_more_work(app, people):
    number = open_ticket(app, status="closed")
    refusal = refused(app, number, people.dora, actions.set_urgency, "high", "late")
    assert (refusal.field, refusal.message) == (None, "ticket_not_open")
    assert refusal.words("it") == "La richiesta non è più aperta (fase: chiusa)."
    for action, args in [
        (actions.set_restore_estimate, (rome(),)),
        (actions.assign, (people.luca,)),
        (actions.escalate_to_vendor, ("Stampanti SpA", "ST-1", rome())),
        (actions.lend_device, ("Notebook",)),
    ]:
        assert refused(app, number, people.dora, action, *args).message == "ticket_not_open"
    assert act(app, number, people.dora, actions.add_note, "Il cliente ha richiamato.").kind == "note"


# -- who may act -------------------------------------------------------------------------------


def test_a_technician_acts_only_on_their_own_tickets_and_never_as_a_dispatcher(app, people):
    number = open_ticket(app)
    forbidden = refused(app, number, people.luca, actions.add_note, "not mine")
    assert isinstance(forbidden, ActionForbidden) and forbidden.action == "add_note" and forbidden.field is None
    assert forbidden.words("en") == "You may not take this action on this ticket."
    act(app, number, people.dora, actions.assign, people.luca)
    assert act(app, number, people.luca, actions.add_note, "Ho controllato il cavo.").user_id == people.luca
    act(app, number, people.luca, actions.move_phase, "triage")
    for action, args in [
        (actions.set_urgency, ("high", "dispatcher's call")),
        (actions.assign, (people.sara,)),
        (actions.escalate_to_vendor, ("Stampanti SpA", "ST-1", rome())),
    ]:
        assert isinstance(refused(app, number, people.luca, action, *args), ActionForbidden)
    # Closing is a dispatcher's move, even from a phase the technician may leave otherwise.
    act(app, number, people.luca, actions.move_phase, "resolved")
    assert refused(app, number, people.luca, actions.move_phase, "closed").action == "close"  # type: ignore[attr-defined]
    assert act(app, number, people.dora, actions.move_phase, "closed").facts == {"from": "resolved", "to": "closed"}


def test_a_disabled_account_may_do_nothing(app, people):
    number = open_ticket(app, technician_id=None)
    act(app, number, people.dora, actions.assign, people.luca)
    with app.config["SESSIONMAKER"]() as session, session.begin():
        session.get(User, people.luca).active = False  # type: ignore[union-attr]
    assert isinstance(refused(app, number, people.luca, actions.add_note, "still here?"), ActionForbidden)


# -- matching the caller ---------------------------------------------------------------------------


def test_matching_a_caller_sends_the_confirmation_once_as_for_a_recognised_caller(app, people, jobs, smtp_sink):
    number = open_ticket(app, STRANGER)
    jobs.run_all()  # the follow-up: the dispatchers' notice only, nobody to confirm to
    assert [rcpts for rcpts, _ in smtp_sink.messages] == [[DISPATCH]]
    assert the_ticket(app, number).needs_match

    giulia = contact_id(app, GIULIA_EMAIL)
    done = act(app, number, people.dora, actions.match_caller, giulia, True)
    assert done.kind == "caller_matched" and done.user_id == people.dora
    # premium now, not base: the deadlines are counted again (tests/test_sla_clock.py says more)
    assert "response_due" in done.facts and "restore_due" in done.facts
    del done.facts["response_due"], done.facts["restore_due"]
    assert done.facts == {
        "contact": "Giulia Rossi",
        "contact_id": giulia,
        "customer": "Officine Brambilla",
        "number_saved": STRANGER,
        "previous_phone": GIULIA,
    }
    assert said(done) == (
        f"Chiamante associato a Giulia Rossi (Officine Brambilla). Numero {STRANGER} salvato sul contatto,"
        f" al posto di {GIULIA}."
    )
    ticket = the_ticket(app, number)
    assert not ticket.needs_match and ticket.contact.email == GIULIA_EMAIL  # type: ignore[union-attr]
    assert ticket.customer.name == "Officine Brambilla"  # type: ignore[union-attr]
    with app.config["SESSIONMAKER"]() as session:
        assert get_contact_by_phone(session, STRANGER).email == GIULIA_EMAIL  # type: ignore[union-attr]

    jobs.run_all()
    jobs.run_all()  # nothing more: every email is keyed once
    [confirmation] = smtp_sink.to(GIULIA_EMAIL)
    assert confirmation["Subject"] == f"Richiesta di assistenza {number} aperta"
    assert "Gentile Giulia Rossi" in confirmation.get_content()
    [copy] = smtp_sink.to(MARCO_EMAIL)
    assert "come referente di Officine Brambilla" in copy.get_content()
    assert len(smtp_sink.to(DISPATCH)) == 1
    with app.config["SESSIONMAKER"]() as session:
        keys = set(session.scalars(select(Email.key)))
    ticket = the_ticket(app, number)
    assert f"confirmation:{ticket.id}" in keys and ticket.confirmation_sent_at is not None


def contact_id(app, email: str) -> int:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        return session.scalars(select(Contact.id).where(Contact.email == email)).one()


def test_a_withheld_caller_is_matched_and_the_callback_number_saved(app, people):
    number = open_ticket(app, None, callback="+390299887766")
    done = act(app, number, people.dora, actions.match_caller, contact_id(app, ANNA_EMAIL), save_number=True)
    assert done.facts["number_saved"] == "+390299887766" and done.facts["previous_phone"] == ANNA
    assert the_ticket(app, number).customer.name == "Studio Verdi"  # type: ignore[union-attr]


def test_matching_without_saving_leaves_the_contacts_number(app, people):
    number = open_ticket(app, STRANGER)
    done = act(app, number, people.dora, actions.match_caller, contact_id(app, GIULIA_EMAIL), False)
    assert "number_saved" not in done.facts
    with app.config["SESSIONMAKER"]() as session:
        assert get_contact_by_phone(session, GIULIA).email == GIULIA_EMAIL  # type: ignore[union-attr]
        assert get_contact_by_phone(session, STRANGER) is None


def test_matching_is_refused_for_a_recognised_caller_an_unknown_contact_or_no_number_to_save(app, people):
    recognised = open_ticket(app, GIULIA)
    refusal = refused(app, recognised, people.dora, actions.match_caller, contact_id(app, ANNA_EMAIL), False)
    assert (refusal.field, refusal.message) == ("contact_id", "already_matched")
    stranger = open_ticket(app, STRANGER)
    assert refused(app, stranger, people.dora, actions.match_caller, 999_999, False).message == "unknown_contact"
    withheld = open_ticket(app, None)
    refusal = refused(app, withheld, people.dora, actions.match_caller, contact_id(app, ANNA_EMAIL), True)
    assert (refusal.field, refusal.message) == ("save_number", "no_number_to_save")


# -- the phases ---------------------------------------------------------------------------------------


def test_a_ticket_goes_through_the_phases_and_its_ends_are_timed(app, people):
    number = open_ticket(app)
    for phase in ("triage", "diagnostics", "intervention", "resolved"):
        act(app, number, people.dora, actions.move_phase, phase)
    ticket = the_ticket(app, number)
    assert ticket.status == "resolved" and ticket.resolved_at is not None and ticket.closed_at is None
    done = act(app, number, people.dora, actions.move_phase, "closed")
    assert (
        said(done) == "Fase cambiata da risolta a chiusa."
        and said(done, "en") == "Phase moved from resolved to closed."
    )
    ticket = the_ticket(app, number)
    assert ticket.status == "closed" and ticket.closed_at is not None
    moves = [e.facts for e in ticket.events if e.kind == "phase_moved"]
    assert [m["to"] for m in moves] == ["triage", "diagnostics", "intervention", "resolved", "closed"]


def test_a_move_the_rules_forbid_is_refused_naming_both_phases(app, people):
    number = open_ticket(app)
    refusal = refused(app, number, people.dora, actions.move_phase, "resolved")
    assert (refusal.field, refusal.message, refusal.facts) == (
        "phase",
        "phase_move_forbidden",
        {"from": "received", "to": "resolved"},
    )
    assert refusal.words("it") == "Una richiesta in fase ricevuta non può passare a risolta."
    assert refusal.words("en") == "A ticket in received cannot move to resolved."
    assert refused(app, number, people.dora, actions.move_phase, "limbo").message == "unknown_phase"
    assert refused(app, number, people.dora, actions.move_phase, "received").message == "phase_move_forbidden"


def test_a_resolved_ticket_sent_back_to_triage_is_no_longer_resolved(app, people):
    number = open_ticket(app, status="intervention")
    act(app, number, people.dora, actions.move_phase, "resolved")
    act(app, number, people.dora, actions.move_phase, "triage")
    assert the_ticket(app, number).resolved_at is None


def test_a_ticket_is_not_closed_while_a_courtesy_device_is_out(app, people):
    number = open_ticket(app, status="triage")
    act(app, number, people.dora, actions.lend_device, "Notebook NB-07")
    act(app, number, people.dora, actions.move_phase, "resolved")
    refusal = refused(app, number, people.dora, actions.move_phase, "closed")
    assert (refusal.message, refusal.facts) == ("device_not_returned", {"device": "Notebook NB-07"})
    act(app, number, people.dora, actions.return_device)
    act(app, number, people.dora, actions.move_phase, "closed")


# -- the estimated restore time -------------------------------------------------------------------------


def test_the_estimate_is_emailed_to_the_contact_with_the_referents_in_cc_in_rome_time(app, people, jobs, smtp_sink):
    number = open_ticket(app)
    jobs.run_all()
    before = len(smtp_sink.messages)
    when = rome(days=2, hour=14, minute=30)
    done = act(app, number, people.dora, actions.set_restore_estimate, when.astimezone(UTC))
    assert done.facts == {"at": when.astimezone(UTC).isoformat()}
    assert said(done) == f"Ripristino previsto: {when:%d/%m/%Y} 14:30."
    assert the_ticket(app, number).estimated_restore_at == when

    jobs.run_all()
    [(recipients, message)] = smtp_sink.messages[before:]
    assert sorted(recipients) == [GIULIA_EMAIL, MARCO_EMAIL]
    assert message["To"] == GIULIA_EMAIL and message["Cc"] == MARCO_EMAIL
    assert message["Subject"] == f"Richiesta di assistenza {number}: ripristino previsto"
    assert message["X-Ticket-Number"] == number and message["Message-ID"].endswith("@helpdesk.example.it>")
    body = message.get_content()
    assert "Gentile Giulia Rossi" in body
    assert f"{notices.written_when(when, 'it')} (ora italiana)" in body and "alle 14:30" in body
    sent = the_ticket(app, number).events[-1]
    assert (
        sent.kind == "email"
        and thread.render(sent, "it") == f"Stima del ripristino inviata per email a {GIULIA_EMAIL}."
    )


def test_each_new_estimate_is_a_new_email_and_the_same_one_again_is_refused(app, people, jobs, smtp_sink):
    number = open_ticket(app)
    first, second = rome(days=1, hour=9, minute=0), rome(days=1, hour=17, minute=15)
    act(app, number, people.dora, actions.set_restore_estimate, first)
    done = act(app, number, people.dora, actions.set_restore_estimate, second)
    assert done.facts["previous"] == first.astimezone(UTC).isoformat()
    refusal = refused(app, number, people.dora, actions.set_restore_estimate, second.astimezone(UTC))
    assert (refusal.field, refusal.message) == ("when", "estimate_unchanged")
    jobs.run_all()
    estimates = [m for m in smtp_sink.to(GIULIA_EMAIL) if "ripristino previsto" in m["Subject"]]
    assert len(estimates) == 2
    assert "Questa stima sostituisce la precedente" in estimates[1].get_content()
    assert len({m["Message-ID"] for m in estimates}) == 2


def test_the_estimate_is_written_in_the_tickets_language(app, people, jobs, smtp_sink):
    number = open_ticket(app, language="en")
    when = rome(days=3, hour=8, minute=5)
    act(app, number, people.dora, actions.set_restore_estimate, when)
    jobs.run_all()
    [message] = [m for m in smtp_sink.to(GIULIA_EMAIL) if "estimated restore time" in m["Subject"]]
    assert message["Subject"] == f"Support request {number}: estimated restore time"
    body = message.get_content()
    assert body.startswith("Dear Giulia Rossi,") and f"by {notices.written_when(when, 'en')} (Italian time)" in body
    assert "at 8:05" in body


def test_an_estimate_must_be_a_moment_to_come_with_its_time_zone(app, people):
    number = open_ticket(app)
    assert refused(app, number, people.dora, actions.set_restore_estimate, utcnow() - timedelta(minutes=1)).message == (
        "not_in_future"
    )
    naive = datetime.now() + timedelta(days=1)
    refusal = refused(app, number, people.dora, actions.set_restore_estimate, naive)
    assert (refusal.field, refusal.message) == ("when", "time_zone_required")
    assert refused(app, number, people.dora, actions.set_restore_estimate, "tomorrow").message == "not_a_time"


def test_an_unmatched_callers_estimate_is_kept_but_emailed_to_nobody(app, people, jobs, smtp_sink):
    number = open_ticket(app, STRANGER)
    done = act(app, number, people.dora, actions.set_restore_estimate, rome())
    assert done.facts["unmatched"] is True
    assert "Nessuna email" in said(done) and "No email" in said(done, "en")
    jobs.run_all()
    assert [rcpts for rcpts, _ in smtp_sink.messages] == [[DISPATCH]]


# -- assigning ------------------------------------------------------------------------------------------


def test_assigning_by_skill_then_reassigning_keeps_the_history(app, people):
    number = open_ticket(app)
    done = act(app, number, people.dora, actions.assign, people.luca, skill="Network")
    assert done.facts == {"to": "Luca Ferrari", "to_id": people.luca, "skill": "network"}
    assert said(done) == "Assegnata a Luca Ferrari. Competenza richiesta: network."
    ticket = the_ticket(app, number)
    assert ticket.technician_id == people.luca and ticket.skill_needed == "network"
    done = act(app, number, people.dora, actions.assign, people.sara, skill="windows")
    assert done.facts == {
        "to": "Sara Neri",
        "to_id": people.sara,
        "from": "Luca Ferrari",
        "from_id": people.luca,
        "skill": "windows",
    }
    assert said(done, "en") == "Assigned to Sara Neri. Previously assigned to Luca Ferrari. Skill needed: windows."
    ticket = the_ticket(app, number)
    assert ticket.technician_id == people.sara and ticket.skill_needed == "windows"
    assert [e.facts["to"] for e in ticket.events if e.kind == "assigned"] == ["Luca Ferrari", "Sara Neri"]


def test_assigning_someone_without_the_skill_or_no_active_technician_is_refused(app, people):
    number = open_ticket(app)
    refusal = refused(app, number, people.dora, actions.assign, people.sara, skill="network")
    assert (refusal.field, refusal.message, refusal.facts) == (
        "technician_id",
        "lacks_skill",
        {"technician": "Sara Neri", "skill": "network"},
    )
    assert refusal.words("it") == "Sara Neri non ha la competenza network."
    for who in (people.gino, people.dora, 999_999):
        assert refused(app, number, people.dora, actions.assign, who).message == "not_a_technician"
    act(app, number, people.dora, actions.assign, people.luca)
    assert refused(app, number, people.dora, actions.assign, people.luca).message == "already_assigned"
    act(app, number, people.dora, actions.assign, people.luca, skill="printers")  # the same person, a new need
    assert the_ticket(app, number).skill_needed == "printers"


# -- the vendor ---------------------------------------------------------------------------------------


def test_escalating_to_a_vendor_keeps_its_name_reference_and_promise(app, people):
    number = open_ticket(app)
    promised = rome(days=2, hour=12, minute=0)
    done = act(app, number, people.dora, actions.escalate_to_vendor, " Stampanti SpA ", "ST-4711", promised)
    assert done.facts == {
        "vendor": "Stampanti SpA",
        "reference": "ST-4711",
        "restore_at": promised.astimezone(UTC).isoformat(),
    }
    assert (
        said(done, "en")
        == f"Escalated to vendor Stampanti SpA, reference ST-4711: restore promised by {promised:%Y-%m-%d} 12:00."
    )
    ticket = the_ticket(app, number)
    assert (ticket.vendor_name, ticket.vendor_reference, ticket.vendor_restore_at) == (
        "Stampanti SpA",
        "ST-4711",
        promised,
    )


def test_escalating_needs_each_field(app, people):
    number = open_ticket(app)
    assert refused(app, number, people.dora, actions.escalate_to_vendor, " ", "ST-1", rome()).field == "vendor"
    assert refused(app, number, people.dora, actions.escalate_to_vendor, "V", "", rome()).field == "reference"
    assert refused(app, number, people.dora, actions.escalate_to_vendor, "V", "R" * 101, rome()).message == "too_long"
    past = refused(app, number, people.dora, actions.escalate_to_vendor, "V", "R", rome(days=-1))
    assert (past.field, past.message) == ("restore_at", "not_in_future")


# -- the courtesy device -----------------------------------------------------------------------------------


def test_a_courtesy_device_is_lent_where_the_sla_includes_it_and_returned(app, people):
    number = open_ticket(app)  # Officine Brambilla: premium
    done = act(app, number, people.dora, actions.lend_device, "Notebook NB-07")
    assert done.facts == {"device": "Notebook NB-07"}
    assert said(done) == "Prestato al cliente un dispositivo sostitutivo: Notebook NB-07."
    ticket = the_ticket(app, number)
    assert ticket.courtesy_device == "Notebook NB-07" and ticket.courtesy_lent_at is not None
    again = refused(app, number, people.dora, actions.lend_device, "Another one")
    assert (again.message, again.facts) == ("device_already_lent", {"device": "Notebook NB-07"})
    done = act(app, number, people.dora, actions.return_device)
    assert said(done, "en") == "The customer returned the courtesy device: Notebook NB-07."
    assert the_ticket(app, number).courtesy_returned_at is not None
    assert refused(app, number, people.dora, actions.return_device).message == "no_device_lent"


def test_no_courtesy_device_where_the_sla_does_not_include_one(app, people):
    verdi = open_ticket(app, ANNA)  # Studio Verdi: base
    refusal = refused(app, verdi, people.dora, actions.lend_device, "Notebook")
    assert (refusal.field, refusal.message, refusal.facts) == ("device", "not_in_sla", {"level": "base"})
    unmatched = open_ticket(app, STRANGER)
    assert refused(app, unmatched, people.dora, actions.lend_device, "Notebook").message == "customer_not_confirmed"


def test_the_sla_table_in_force_decides(app, people):
    generous = sla.parse(sla.DEFAULT_TABLE.read_text().replace("base = []", 'base = ["courtesy_device"]'))
    verdi = open_ticket(app, ANNA)
    assert act(app, verdi, people.dora, actions.lend_device, "Notebook", table=generous).kind == "device_lent"


# -- notes and replies ----------------------------------------------------------------------------------


def test_a_note_is_kept_on_the_thread_and_never_emailed(app, people, jobs, smtp_sink):
    number = open_ticket(app)
    jobs.run_all()
    before = len(smtp_sink.messages)
    done = act(app, number, people.dora, actions.add_note, "  Cliente avvisato a voce; richiamare alle 15.  ")
    assert done == Done("note", {"note": "Cliente avvisato a voce; richiamare alle 15."}, people.dora)
    assert said(done, "en") == "Cliente avvisato a voce; richiamare alle 15."
    jobs.run_all()
    assert smtp_sink.messages[before:] == []
    with app.config["SESSIONMAKER"]() as session:
        assert not [e for e in session.scalars(select(Email)) if "richiamare" in e.body]
    assert refused(app, number, people.dora, actions.add_note, "").message == "required"
    assert refused(app, number, people.dora, actions.add_note, "x" * 5001).message == "too_long"


def test_a_reply_is_emailed_to_the_contact_and_referents_with_the_number_in_the_subject(app, people, jobs, smtp_sink):
    number = open_ticket(app)
    jobs.run_all()
    before = len(smtp_sink.messages)
    text = "Buongiorno,\nil tecnico passerà domattina alle 9.\nCordiali saluti"
    done = act(app, number, people.dora, actions.reply, text)
    assert done.facts == {"text": text, "to": GIULIA_EMAIL, "cc": MARCO_EMAIL}
    assert said(done).startswith(f"Risposta per email a {GIULIA_EMAIL}, in copia {MARCO_EMAIL}: «Buongiorno,")
    jobs.run_all()
    [(recipients, message)] = smtp_sink.messages[before:]
    assert sorted(recipients) == [GIULIA_EMAIL, MARCO_EMAIL] and message["Cc"] == MARCO_EMAIL
    assert number in message["Subject"]
    assert text in message.get_content().replace("\r\n", "\n")
    sent = the_ticket(app, number).events[-1]
    assert thread.render(sent, "en") == f"Reply emailed to {GIULIA_EMAIL}."


def test_a_reply_needs_a_contact_and_words(app, people):
    unmatched = open_ticket(app, STRANGER)
    refusal = refused(app, unmatched, people.dora, actions.reply, "Hello")
    assert (refusal.field, refusal.message) == (None, "no_contact")
    assert refused(app, open_ticket(app), people.dora, actions.reply, "   ").field == "text"


def test_a_contact_who_is_the_only_referent_gets_no_cc(app, people, jobs, smtp_sink):
    number = open_ticket(app, ANNA)
    done = act(app, number, people.dora, actions.reply, "Fatto.")
    assert "cc" not in done.facts
    jobs.run_all()
    [reply] = [m for m in smtp_sink.to(ANNA_EMAIL) if number in m["Subject"] and "risposta" in m["Subject"]]
    assert reply["Cc"] is None


# -- the words -------------------------------------------------------------------------------------------


def test_the_examples_cover_the_kinds_of_the_actions():
    assert set(ACTION_EXAMPLES) <= EVENT_KINDS
    written = {
        node.args[3].value
        for node in ast.walk(ast.parse((PROJECT / "helpdesk" / "actions.py").read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_record"
    }
    assert written == set(ACTION_EXAMPLES) | {"note"}


@pytest.mark.parametrize("language", prompts.LANGUAGES)
@pytest.mark.parametrize("kind", sorted(ACTION_EXAMPLES))
def test_every_kind_of_the_actions_is_said_from_its_facts(kind, language):
    facts = ACTION_EXAMPLES[kind]
    words = thread.render_facts(kind, facts, language)
    assert words.strip() and "{" not in words and words != thread.as_is(kind, facts)


def test_times_on_the_thread_are_on_the_help_desks_clock():
    facts = {"at": "2026-07-01T08:30:00+00:00"}  # summer: Rome is two hours ahead
    assert thread.render_facts("restore_estimated", facts, "it") == "Ripristino previsto: 01/07/2026 10:30."
    assert thread.render_facts("restore_estimated", facts, "en") == "Estimated restore time: 2026-07-01 10:30."


def refusal_codes() -> set[str]:
    """Every code the actions and the API refuse with (ActionRefused(field, "code", ...))."""
    codes = {"not_permitted"}
    for path in (PROJECT / "helpdesk" / "actions.py", PROJECT / "ivr" / "api.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ActionRefused":
                codes.add(node.args[1].value)  # type: ignore[attr-defined]
    return codes


def test_every_refusal_has_words_in_every_language():
    codes = refusal_codes()
    assert {"reason_required", "phase_move_forbidden", "unknown_user", "not_a_time"} <= codes
    for language in prompts.LANGUAGES:
        assert codes <= set(thread.catalogue(language).refusals), language
    assert set(thread.catalogue("en").refusals) == set(thread.catalogue("it").refusals)


def test_a_refusal_without_words_still_says_something():
    assert thread.refusal("no_such_code", {}, "en") == "no_such_code"
    assert "limit: 3" in thread.refusal("no_such_code", {"limit": 3}, "en")
    assert ActionRefused("text", "too_long", limit=3).words("xx") == "Al massimo 3 caratteri."


def test_an_emails_moment_is_written_on_the_help_desks_clock_in_each_language():
    # The emails' words are in prompts/ (tests/test_prompts.py checks every key in every language).
    moment = datetime(2026, 12, 1, 13, 30, tzinfo=UTC)
    assert notices.written_when(moment, "it") == "martedì 1 dicembre 2026 alle 14:30"
    assert notices.written_when(moment, "en") == "Tuesday 1 December 2026 at 14:30"
