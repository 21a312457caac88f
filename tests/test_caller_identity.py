"""Only the caller ID identifies a caller: typed numbers and codes are noted for a dispatcher to confirm."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from helpdesk import thread
from helpdesk.intake import open_ticket
from storage.contacts import get_contact_by_phone, get_customer_by_code
from storage.models import Call, Ticket
from storage.pins import set_customer_pin
from tests.conftest import GIULIA, STRANGER, Caller, Twiml

pytestmark = pytest.mark.usefixtures("directory", "clean_status_counters")

MARCO = "+393331234567"  # Giulia's colleague at Officine Brambilla (a referent)


def the_ticket(app) -> Ticket:
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket)).one()
        _ = ticket.events, ticket.customer, ticket.contact, ticket.suggested_contact
        if ticket.suggested_contact is not None:
            _ = ticket.suggested_contact.customer
        return ticket


def withheld_typing(caller, number: str) -> tuple[Caller, Twiml]:
    """A withheld caller who types `number` to be called back; returns the call and what the line said."""
    call = caller("anonymous")
    call.dial_in()
    call.stay_silent()  # the language offer
    return call, call.press(number + "#")


def open_everything_stopped(call: Caller) -> Twiml:
    """From the main menu: a new request, everything stopped, a message, confirmed."""
    call.press("1"), call.press("1"), call.speak()
    return call.press("1")


def test_withheld_caller_typing_a_contacts_number_hears_no_company_name(app, caller):
    call, noted = withheld_typing(caller, "0392301122")  # Giulia's number
    assert "Officine Brambilla" not in noted.said() and "Buongiorno" not in noted.said()
    assert "la richiameremo al numero 3, 9, 0, 3, 9, 2, 3, 0, 1, 1, 2, 2" in noted.said()
    assert "codice cliente" in noted.said()  # on like any unknown caller
    menu = call.stay_silent()  # no customer code
    assert "Officine Brambilla" not in menu.said()
    opened = open_everything_stopped(call)
    assert "Un operatore la ricontatterà" in opened.said()  # no confirmation email is promised
    assert "Riceverà una conferma per email" not in opened.said()


def test_withheld_caller_typing_giulias_number_gets_a_ticket_that_only_suggests_her(app, caller):
    call, _ = withheld_typing(caller, "0392301122")
    call.stay_silent()
    open_everything_stopped(call)
    ticket = the_ticket(app)
    assert ticket.caller is None and ticket.callback_number == GIULIA
    assert ticket.contact_id is None and ticket.customer_id is None and ticket.needs_match
    assert ticket.suggested_contact.email == "giulia.rossi@brambilla.example.it"
    assert ticket.urgency == "high"  # everything stopped, no verified SLA (Giulia's would make it critical)
    opening = thread.render(ticket.events[0], "en")
    assert f"Callback number typed by the caller (the caller ID was withheld): {GIULIA}." in opening
    assert "Suggested match: Giulia Rossi, Officine Brambilla — to confirm." in opening
    assert "Unregistered caller" in opening


def test_at_the_storage_level_a_typed_number_is_a_callback_and_a_suggestion_never_the_contact(app):
    with app.config["SESSIONMAKER"]() as session, session.begin():
        giulia = get_contact_by_phone(session, GIULIA)
        call = Call(call_sid="CA" + uuid.uuid4().hex, caller=None, language="it", attempts=0, severity=1)
        call.callback_number, call.suggested_contact = GIULIA, giulia
        session.add(call)
        session.flush()
        ticket = open_ticket(session, call, voicemail=False, opened_by="a test")
        ticket_id, giulia_id = ticket.id, giulia.id
    with app.config["SESSIONMAKER"]() as session:
        stored = session.get(Ticket, ticket_id)
        assert stored.contact_id is None and stored.contact is None
        assert stored.needs_match is True
        assert stored.suggested_contact_id == giulia_id
        assert stored.callback_number == GIULIA
        assert stored.customer_id is None


def test_at_the_storage_level_a_typed_code_links_the_customer_provisionally(app):
    with app.config["SESSIONMAKER"]() as session, session.begin():
        verdi = get_customer_by_code(session, "2002")
        call = Call(call_sid="CA" + uuid.uuid4().hex, caller=STRANGER, language="it", attempts=0, severity=2)
        call.customer = verdi
        session.add(call)
        session.flush()
        ticket = open_ticket(session, call, voicemail=False, opened_by="a test")
        ticket_id, verdi_id = ticket.id, verdi.id
    with app.config["SESSIONMAKER"]() as session:
        stored = session.get(Ticket, ticket_id)
        assert stored.customer_id == verdi_id
        assert stored.needs_match is True
        assert stored.contact_id is None and stored.suggested_contact_id is None
        opening = thread.render(stored.events[0], "en")
        assert "Customer code typed by the caller: Studio Verdi (2002), provisional: to confirm." in opening


def test_unknown_caller_typing_a_customer_code_is_thanked_without_the_company_name(app, caller):
    call = caller(STRANGER)
    call.dial_in(), call.stay_silent()
    thanked = call.press("1001#")
    assert "Grazie, abbiamo preso nota del codice cliente" in thanked.said()
    assert "Officine Brambilla" not in thanked.said()
    open_everything_stopped(call)
    ticket = the_ticket(app)
    assert ticket.customer.code == "1001" and ticket.needs_match and ticket.contact is None
    assert "provisional: to confirm" in thread.render(ticket.events[0], "en")


def test_in_english_the_code_is_noted_without_the_company_name(app, caller):
    call = caller(STRANGER)
    call.dial_in()
    call.press("9")
    thanked = call.press("2002#")
    assert "we have noted your customer code" in thanked.said() and "Studio Verdi" not in thanked.said()


def test_a_claimed_customers_sla_does_not_raise_the_urgency(app, caller):
    call = caller(STRANGER)
    call.dial_in(), call.stay_silent()
    call.press("1001#")  # Officine Brambilla is premium: everything stopped would be critical for Giulia
    open_everything_stopped(call)
    assert the_ticket(app).urgency == "high"  # the base SLA's answer


def test_only_the_caller_ids_contact_has_a_verified_sla(app):
    """Everything stopped: critical for Giulia identified by caller ID (premium), high for the same customer
    claimed by a typed code or suggested by a typed callback number (no verified SLA: the base answer)."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        giulia = get_contact_by_phone(session, GIULIA)
        identified = Call(call_sid="CA1", caller=GIULIA, severity=1)
        identified.contact, identified.customer = giulia, giulia.customer
        claimed = Call(call_sid="CA2", caller=STRANGER, severity=1)
        claimed.customer = giulia.customer
        withheld = Call(call_sid="CA3", caller=None, callback_number=GIULIA, severity=1)
        withheld.suggested_contact = giulia
        session.add_all([identified, claimed, withheld])
        opened = [
            open_ticket(session, call, voicemail=False, opened_by="a test") for call in (identified, claimed, withheld)
        ]
        assert giulia.customer.sla == "premium"
        assert [ticket.urgency for ticket in opened] == ["critical", "high", "high"]
        assert [ticket.needs_match for ticket in opened] == [False, True, True]


def test_a_withheld_caller_with_giulias_number_must_give_the_ticket_number_and_its_pin(app, caller):
    giulias = caller(GIULIA)
    giulias.dial_in(), giulias.stay_silent()
    open_everything_stopped(giulias)
    number = the_ticket(app).number
    with app.config["SESSIONMAKER"]() as session, session.begin():
        set_customer_pin(session, "1001", "2468")

    call, _ = withheld_typing(caller, "0392301122")
    call.stay_silent()
    asked = call.press("2")
    assert "Digiti il numero della richiesta" in asked.said() and "richieste aperte" not in asked.said()
    pin = call.press(number + "#")
    assert "digiti il PIN telefonico" in pin.said()
    refused = call.press("1111#")
    assert refused.said().startswith("Non possiamo dare informazioni su questa richiesta")
    status = call.press("2468#")
    assert "Stato: ricevuta" in status.said()


def test_a_provisional_customers_contacts_and_pin_open_nothing_of_that_ticket(app, caller):
    stranger = caller(STRANGER)
    stranger.dial_in(), stranger.stay_silent(), stranger.press("1001#")
    open_everything_stopped(stranger)
    number = the_ticket(app).number
    with app.config["SESSIONMAKER"]() as session, session.begin():
        set_customer_pin(session, "1001", "2468")

    marco = caller(MARCO)  # a contact of Officine Brambilla, by caller ID
    marco.dial_in(), marco.stay_silent(), marco.press("2")
    assert "digiti il PIN telefonico" in marco.press(number + "#").said()
    assert marco.press("2468#").said().startswith("Non possiamo dare informazioni")

    again = caller(STRANGER)  # the number that opened it still hears it
    again.dial_in(), again.stay_silent(), again.stay_silent(), again.press("2")
    assert "Stato: ricevuta" in again.press(number + "#").said()
