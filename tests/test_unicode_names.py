"""Whatever names the database holds, the TwiML that says them is well-formed XML.

The import refuses control characters, but names may reach the database another way
(an older import, a console, a migration). XML 1.0 cannot carry most C0 controls,
U+FFFE or U+FFFF, so every value said on the line goes through `prompts.speakable`.
Names are written straight into the rows here, bypassing the import.
"""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

import prompts
from storage.db import upgrade
from storage.models import Contact, Customer, Ticket, User
from tests.conftest import BASE_URL, GIULIA, Caller

pytestmark = pytest.mark.usefixtures("directory")

GIULIA_EMAIL = "giulia.rossi@brambilla.example.it"


@pytest.fixture
def database_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """SQLite only: PostgreSQL refuses NUL in text, and arbitrary text is the point here."""
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    upgrade(url)
    return url


@pytest.fixture
def giulias_ticket(app, client) -> str:  # type: ignore[no-untyped-def]
    """A ticket Giulia opened on the line, with a technician assigned; returns its number."""
    call = Caller(client, GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak(), call.press("1")
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = session.scalars(select(Ticket)).one()
        ticket.technician = User(name="Luca Ferrari", email="luca.ferrari@helpdesk.example.it")
        return ticket.number


def store_names(app, company: str, contact: str, technician: str) -> None:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session, session.begin():
        giulia = session.scalars(select(Contact).where(Contact.email == GIULIA_EMAIL)).one()
        giulia.name = contact
        session.get_one(Customer, giulia.customer_id).name = company
        session.scalars(select(User)).one().name = technician


def answer(call: Caller, url: str, extra: dict[str, str] | None = None) -> ElementTree.Element:
    """Post a step as Twilio would; the answer must be a 200 that parses as a TwiML Response."""
    response = call.post(url, extra)
    assert response.status_code == 200, response.data
    root = ElementTree.fromstring(response.data)  # raises on anything XML 1.0 cannot carry
    assert root.tag == "Response"
    return root


def says(root: ElementTree.Element) -> list[str]:
    return [say.text or "" for say in root.iter("Say")]


def action(root: ElementTree.Element) -> str:
    gather = next(root.iter("Gather"))
    return gather.get("action", "")


def silence(root: ElementTree.Element) -> str:
    return (next(root.iter("Redirect")).text or "").strip()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(company=st.text(), contact=st.text(), technician=st.text(), language=st.sampled_from(prompts.LANGUAGES))
def test_any_stored_name_is_said_in_well_formed_twiml(
    app, client, giulias_ticket, company, contact, technician, language
):
    store_names(app, company, contact, technician)
    call = Caller(client, GIULIA)
    welcome = answer(call, f"{BASE_URL}/twilio/voice", {"CallStatus": "ringing"})
    if language == "en":
        menu = answer(call, action(welcome), {"Digits": "9"})
    else:
        menu = answer(call, silence(welcome))
    text = prompts.catalogue(language).text
    assert text("greeting_known", company=company.rstrip(".")) in says(menu)  # the greeting names the company

    my_tickets = answer(call, action(menu), {"Digits": "2"})
    status = answer(call, action(my_tickets), {"Digits": "2"})
    first_name = technician.split()[0] if technician.split() else ""
    assert text("status_technician", name=first_name) in says(status)


@pytest.mark.parametrize(
    ("stored", "said"),
    [
        ("Bell\x07 S.r.l.", "Bell S.r.l"),
        ("Nul\x00Srl", "NulSrl"),
        ("Two\nLines\r\nSrl", "Two Lines Srl"),
        ("Odd\ufffe\uffffSrl", "OddSrl"),
        ("Esc\x1b[2J Srl", "Esc[2J Srl"),
        ("C1\x85\x9b Srl", "C1 Srl"),
        ("Zoë & <Figli>", "Zoë & <Figli>"),
    ],
)
def test_a_company_name_with_characters_xml_cannot_carry_is_greeted_without_them(app, client, stored, said):
    with app.config["SESSIONMAKER"]() as session, session.begin():
        giulia = session.scalars(select(Contact).where(Contact.email == GIULIA_EMAIL)).one()
        session.get_one(Customer, giulia.customer_id).name = stored
    call = Caller(client, GIULIA)
    welcome = answer(call, f"{BASE_URL}/twilio/voice", {"CallStatus": "ringing"})
    menu = answer(call, silence(welcome))
    assert f"Buongiorno, {said}." in says(menu)
