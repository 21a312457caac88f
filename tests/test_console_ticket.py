"""A ticket in the console: who called, the recording, the transcript, the thread, and one form per action."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from helpdesk import thread
from ivr.console.i18n import words
from storage.contacts import get_contact_by_phone
from storage.models import Ticket, TicketEvent, User
from storage.ticket_numbers import ticket_number
from storage.tickets import record_event
from tests.conftest import GIULIA, Caller, sign_in

pytestmark = pytest.mark.usefixtures("directory", "clean_status_counters")

ROME = ZoneInfo("Europe/Rome")
AUDIO = bytes(range(256)) * 40  # 10,240 bytes standing in for a recording


# -- the people and the tickets -------------------------------------------------------------------


def add_user(app, name: str, role: str, *, skills: str = "", language: str = "it") -> User:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session, session.begin():
        user = User(
            name=name,
            email=f"{uuid.uuid4().hex[:8]}@helpdesk.example.it",
            role=role,
            skills=skills,
            language=language,
            active=True,
            session_version=0,
        )
        session.add(user)
    return user


def open_withheld_ticket(caller) -> None:  # type: ignore[no-untyped-def]
    """A caller with a withheld number types Giulia's number to be called back, then leaves a message."""
    call: Caller = caller("anonymous")
    call.dial_in()
    call.stay_silent()  # the language offer
    call.press("0392301122#")  # Giulia's number: only a suggestion
    call.stay_silent()  # no customer code
    call.press("1"), call.press("1"), call.speak()
    call.press("1")


def open_giulias_ticket(caller) -> None:  # type: ignore[no-untyped-def]
    """Giulia, a contact of Officine Brambilla (premium), calls from her registered number."""
    call: Caller = caller(GIULIA)
    call.dial_in()
    call.stay_silent()
    call.press("1"), call.press("2"), call.speak()
    call.press("1")


def newest_number(app) -> str:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        return session.scalars(select(Ticket.number).order_by(Ticket.id.desc()).limit(1)).one()


def load(app, number: str) -> Ticket:  # type: ignore[no-untyped-def]
    """The ticket with its thread and people loaded, detached from any session."""
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        for event in ticket.events:
            _ = event.user
        _ = ticket.customer, ticket.contact, ticket.technician, ticket.suggested_contact
        return ticket


def update(app, number: str, **values: Any) -> None:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        for name, value in values.items():
            setattr(ticket, name, value)


def transcribed(app, number: str, words: str) -> None:  # type: ignore[no-untyped-def]
    """The ticket as the worker leaves it once the message is transcribed."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        ticket.transcript, ticket.transcribed_at = words, datetime.now(UTC)
        record_event(session, ticket, "transcript", words=words)


def with_recording(app, settings, number: str) -> Path:  # type: ignore[no-untyped-def]
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    path = settings.recordings_dir / f"RE{uuid.uuid4().hex}.wav"
    path.write_bytes(AUDIO)
    update(app, number, recording_path=str(path))
    return path


def text_of(response) -> str:  # type: ignore[no-untyped-def]
    """The page's text as a reader sees it: tags and runs of white space gone, entities decoded."""
    body = re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))
    return " ".join(html.unescape(body).split())


def local_time(moment: datetime) -> str:
    return moment.astimezone(ROME).strftime("%d/%m/%Y %H:%M")


@pytest.fixture
def dispatcher(app) -> User:  # type: ignore[no-untyped-def]
    return add_user(app, "Dora Galli", "dispatcher")


@pytest.fixture
def withheld_ticket(app, caller) -> str:  # type: ignore[no-untyped-def]
    open_withheld_ticket(caller)
    number = newest_number(app)
    transcribed(app, number, "La stampante dell'ufficio non stampa più.")
    return number


# -- the page ---------------------------------------------------------------------------------------


def test_the_page_shows_the_withheld_caller_the_suggestion_to_confirm_the_transcript_and_the_thread_in_italian(
    app, client, dispatcher, withheld_ticket
):
    sign_in(client, dispatcher)
    response = client.get(f"/console/tickets/{withheld_ticket}")
    assert response.status_code == 200
    page = text_of(response)
    assert f"Richiesta {withheld_ticket}" in page
    assert "Numero numero nascosto" in page
    assert f"Da richiamare al {GIULIA} digitato dal chiamante" in page
    assert "Associazione suggerita Giulia Rossi, Officine Brambilla da confermare" in page
    assert "Cliente non registrato" in page
    assert "Trascrizione La stampante dell'ufficio non stampa più." in page
    ticket = load(app, withheld_ticket)
    assert [event.kind for event in ticket.events][0] == "opened"
    for event in ticket.events:  # oldest first, each said in Italian, by the line, with its time
        assert f"linea · {local_time(event.at)} {thread.render(event, 'it')}" in page
    shown = page[page.index("Cronologia") :]
    said = [thread.render(event, "it") for event in ticket.events]
    assert [shown.index(words) for words in said] == sorted(shown.index(words) for words in said)


def test_the_page_speaks_english_to_an_english_speaking_user(app, client, withheld_ticket):
    reader = add_user(app, "Ellen Park", "dispatcher", language="en")
    sign_in(client, reader)
    page = text_of(client.get(f"/console/tickets/{withheld_ticket}"))
    assert f"Ticket {withheld_ticket}" in page
    assert "Number withheld number" in page
    assert f"Call back on {GIULIA} typed by the caller" in page
    assert "Suggested match Giulia Rossi, Officine Brambilla to confirm" in page
    assert "Customer unregistered" in page
    opening = load(app, withheld_ticket).events[0]
    assert f"line · {local_time(opening.at)} {thread.render(opening, 'en')}" in page
    assert "Suggested match: Giulia Rossi, Officine Brambilla — to confirm." in page  # the thread's own words


def test_a_recognised_caller_shows_the_contact_and_the_customers_sla(app, client, caller, dispatcher):
    open_giulias_ticket(caller)
    number = newest_number(app)
    sign_in(client, dispatcher)
    page = text_of(client.get(f"/console/tickets/{number}"))
    assert f"Numero {GIULIA}" in page
    assert "Contatto Giulia Rossi — giulia.rossi@brambilla.example.it" in page
    assert "Cliente Officine Brambilla (1001) — contratto premium" in page
    assert "Associazione suggerita" not in page and "da associare" not in page


def test_a_typed_customer_code_is_shown_as_provisional(app, client, caller, dispatcher):
    call: Caller = caller("+393471112233")
    call.dial_in(), call.stay_silent(), call.press("2002#")
    call.press("1"), call.press("3"), call.speak(), call.press("1")
    sign_in(client, dispatcher)
    page = text_of(client.get(f"/console/tickets/{newest_number(app)}"))
    assert "Cliente Studio Verdi (2002) — contratto base codice digitato dal chiamante: da confermare" in page


@pytest.mark.parametrize("number", [ticket_number(100_777), "1000016", "1" * 30, "abc", "１０００015"])
def test_unknown_and_invalid_numbers_are_not_found(client, dispatcher, withheld_ticket, number):
    sign_in(client, dispatcher)
    assert client.get(f"/console/tickets/{number}").status_code == 404
    assert client.get(f"/console/tickets/{number}/recording").status_code == 404


def test_without_a_session_the_page_and_the_recording_lead_to_sign_in(app, client, settings, withheld_ticket):
    with_recording(app, settings, withheld_ticket)
    for path in (f"/console/tickets/{withheld_ticket}", f"/console/tickets/{withheld_ticket}/recording"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/console/login" in response.headers["Location"]
    response = client.post(f"/console/tickets/{withheld_ticket}/note", data={"note-text": "hello"})
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert [event.kind for event in load(app, withheld_ticket).events].count("note") == 0


# -- the recording ----------------------------------------------------------------------------------


def test_the_recording_plays_in_the_page_whole_or_from_any_byte(app, client, settings, dispatcher, withheld_ticket):
    with_recording(app, settings, withheld_ticket)
    sign_in(client, dispatcher)
    page = client.get(f"/console/tickets/{withheld_ticket}").get_data(as_text=True)
    assert (
        f'<audio id="recording" controls preload="metadata" src="/console/tickets/{withheld_ticket}/recording">' in page
    )

    whole = client.get(f"/console/tickets/{withheld_ticket}/recording")
    assert whole.status_code == 200
    assert whole.data == AUDIO
    assert whole.mimetype.startswith("audio/")
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert "no-store" in whole.headers["Cache-Control"] and "private" in whole.headers["Cache-Control"]

    part = client.get(f"/console/tickets/{withheld_ticket}/recording", headers={"Range": "bytes=1000-1099"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 1000-1099/{len(AUDIO)}"
    assert part.data == AUDIO[1000:1100]

    tail = client.get(f"/console/tickets/{withheld_ticket}/recording", headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.data == AUDIO[-16:]


def test_no_recording_is_not_found(app, client, settings, dispatcher, withheld_ticket):
    sign_in(client, dispatcher)
    assert client.get(f"/console/tickets/{withheld_ticket}/recording").status_code == 404
    assert "<audio" not in client.get(f"/console/tickets/{withheld_ticket}").get_data(as_text=True)
    with_recording(app, settings, withheld_ticket).unlink()  # on the ticket, gone from the disk
    assert client.get(f"/console/tickets/{withheld_ticket}/recording").status_code == 404


def test_a_file_outside_the_recordings_folder_is_never_served(
    app, client, settings, tmp_path, dispatcher, withheld_ticket
):
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"not a recording")
    sign_in(client, dispatcher)
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    for stored in (str(secret), str(settings.recordings_dir / ".." / "secret.wav"), "/etc/passwd"):
        update(app, withheld_ticket, recording_path=stored)
        assert client.get(f"/console/tickets/{withheld_ticket}/recording").status_code == 404


def test_a_technician_hears_the_recording_of_an_open_ticket_but_not_of_someone_elses_closed_one(
    app, client, settings, withheld_ticket
):
    luca = add_user(app, "Luca Ferri", "technician", skills="network")
    with_recording(app, settings, withheld_ticket)
    sign_in(client, luca)
    assert client.get(f"/console/tickets/{withheld_ticket}/recording").status_code == 200
    update(app, withheld_ticket, status="closed")
    assert client.get(f"/console/tickets/{withheld_ticket}/recording").status_code == 403
    assert client.get(f"/console/tickets/{withheld_ticket}").status_code == 403


# -- which forms a user gets ----------------------------------------------------------------------


def forms_on(page: str) -> list[str]:
    """The actions whose forms the page offers, in page order."""
    return re.findall(r'<form method="post" action="/console/tickets/\d+/([a-z-]+)"', page)


def options(page: str, select_id: str) -> list[tuple[str | None, str, bool]]:
    """(group, label, selected) of each option of a select, in order."""
    match = re.search(rf'<select[^>]*id="{select_id}"[^>]*>(.*?)</select>', page, re.S)
    assert match, f"no select #{select_id}"
    found: list[tuple[str | None, str, bool]] = []
    group = None
    for tag in re.finditer(r'<optgroup label="([^"]*)">|</optgroup>|<option([^>]*)>([^<]*)</option>', match.group(1)):
        if tag.group(0).startswith("<optgroup"):
            group = html.unescape(tag.group(1))
        elif tag.group(0) == "</optgroup>":
            group = None
        else:
            found.append((group, html.unescape(tag.group(3)), "selected" in tag.group(2)))
    return found


def test_a_dispatcher_gets_every_action_that_applies_and_only_the_allowed_phase_moves(
    app, client, dispatcher, withheld_ticket
):
    sign_in(client, dispatcher)
    page = client.get(f"/console/tickets/{withheld_ticket}").get_data(as_text=True)
    # No courtesy device: the caller is not matched to a customer whose SLA includes one.
    assert forms_on(page) == ["urgency", "match", "phase", "estimate", "assign", "vendor", "note", "reply"]
    assert [label for _, label, _ in options(page, "phase-phase")] == ["triage", "chiusa"]  # from received
    update(app, withheld_ticket, status="diagnostics")
    page = client.get(f"/console/tickets/{withheld_ticket}").get_data(as_text=True)
    assert [label for _, label, _ in options(page, "phase-phase")] == ["intervento", "risolta"]
    update(app, withheld_ticket, status="resolved")  # no more work on it: only the thread and the phase
    page = client.get(f"/console/tickets/{withheld_ticket}").get_data(as_text=True)
    assert forms_on(page) == ["phase", "note", "reply"]
    update(app, withheld_ticket, status="closed")
    assert "phase" not in forms_on(client.get(f"/console/tickets/{withheld_ticket}").get_data(as_text=True))


def test_a_courtesy_device_is_offered_where_the_customers_sla_includes_it(app, client, caller, dispatcher):
    open_giulias_ticket(caller)  # Officine Brambilla: premium
    number = newest_number(app)
    sign_in(client, dispatcher)
    page = client.get(f"/console/tickets/{number}").get_data(as_text=True)
    assert forms_on(page) == ["urgency", "phase", "estimate", "assign", "vendor", "device", "note", "reply"]
    assert "previsto dal contratto, non prestato" in text_of(client.get(f"/console/tickets/{number}"))
    update(app, number, courtesy_device="Portatile di cortesia", courtesy_lent_at=datetime.now(UTC))
    assert forms_on(client.get(f"/console/tickets/{number}").get_data(as_text=True)) == [
        "urgency",
        "phase",
        "estimate",
        "assign",
        "vendor",
        "device-return",
        "note",
        "reply",
    ]


def test_the_match_form_offers_every_contact_by_customer_with_the_suggestion_chosen(
    app, client, dispatcher, withheld_ticket
):
    sign_in(client, dispatcher)
    page = client.get(f"/console/tickets/{withheld_ticket}").get_data(as_text=True)
    assert options(page, "match-contact") == [
        ("Officine Brambilla (1001)", "Giulia Rossi", True),
        ("Officine Brambilla (1001)", "Marco Bianchi", False),
        ("Studio Verdi (2002)", "Anna Verdi", False),
    ]
    assert re.search(r'<input[^>]*id="match-save_number"[^>]*type="checkbox"', page)
    assert f"Salva il numero {GIULIA} sul contatto" in text_of(client.get(f"/console/tickets/{withheld_ticket}"))


def test_the_assign_form_lists_who_has_the_needed_skill_first_and_marks_the_others(
    app, client, dispatcher, withheld_ticket
):
    add_user(app, "Luca Ferri", "technician", skills="network")
    add_user(app, "Sara Conti", "technician", skills="printers")
    add_user(app, "Paolo Neri", "technician", skills="network,printers")
    gone = add_user(app, "Ugo Ex", "technician", skills="printers")
    with app.config["SESSIONMAKER"]() as session, session.begin():
        session.get(User, gone.id).active = False
    update(app, withheld_ticket, skill_needed="printers")
    sign_in(client, dispatcher)
    page = client.get(f"/console/tickets/{withheld_ticket}").get_data(as_text=True)
    assert options(page, "assign-technician") == [
        ("Con la competenza printers", "Paolo Neri", False),
        ("Con la competenza printers", "Sara Conti", False),
        ("Senza la competenza printers", "Luca Ferri — altre competenze: network", False),
    ]
    assert [(label, chosen) for _, label, chosen in options(page, "assign-skill")] == [
        ("(nessuna in particolare)", False),
        ("network", False),
        ("printers", True),
    ]


def test_a_technician_acts_only_on_their_own_ticket_and_never_with_a_dispatchers_action(app, client, withheld_ticket):
    luca = add_user(app, "Luca Ferri", "technician", skills="network")
    sign_in(client, luca)
    page = client.get(f"/console/tickets/{withheld_ticket}").get_data(as_text=True)
    assert forms_on(page) == []  # in the queue, someone else's to work
    update(app, withheld_ticket, technician_id=luca.id)
    page = client.get(f"/console/tickets/{withheld_ticket}").get_data(as_text=True)
    assert forms_on(page) == ["phase", "estimate", "note", "reply"]
    assert [label for _, label, _ in options(page, "phase-phase")] == ["triage"]  # closing is a dispatcher's


# -- the actions --------------------------------------------------------------------------------------


def csrf_token(client, number: str) -> str:  # type: ignore[no-untyped-def]
    page = client.get(f"/console/tickets/{number}").get_data(as_text=True)
    found = re.search(r'name="(?:[a-z-]+-)?csrf_token"[^>]*value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def state(app, number: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Everything an action may change: the ticket's columns, its thread, its emails, the contacts."""
    from storage.models import Contact, Email

    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        columns = {column.key: getattr(ticket, column.key) for column in Ticket.__table__.columns}
        columns["events"] = [(event.kind, event.facts, event.user_id) for event in ticket.events]
        columns["emails"] = session.scalars(select(Email.id).order_by(Email.id)).all()
        columns["contacts"] = session.execute(select(Contact.id, Contact.phone).order_by(Contact.id)).all()
        return columns


def post(client, number: str, action: str, fields: dict[str, Any], token: str):  # type: ignore[no-untyped-def]
    data = {f"{action}-{name}": value for name, value in fields.items()}
    data[f"{action}-csrf_token"] = token
    return client.post(f"/console/tickets/{number}/{action}", data=data)


def error_beside(response, action: str, field: str) -> str:  # type: ignore[no-untyped-def]
    """The message shown beside the field of the action's form (the field says it is invalid, and where)."""
    page = response.get_data(as_text=True)
    field_id = f"{action}-{field}"
    assert re.search(rf'<[^>]*aria-describedby="{field_id}-error"[^>]*id="{field_id}"', page) or re.search(
        rf'<[^>]*id="{field_id}"[^>]*aria-describedby="{field_id}-error"', page
    ), f"#{field_id} is not marked invalid"
    found = re.search(rf'<span class="field-error" id="{field_id}-error">([^<]*)</span>', page)
    assert found, f"no message beside #{field_id}"
    return html.unescape(found.group(1))


@dataclass(frozen=True)
class World:
    dispatcher: User
    luca: User  # a technician: network
    withheld: str  # a withheld caller's ticket, suggesting Giulia
    giulias: str  # Giulia's own ticket: Officine Brambilla, premium
    giulia_id: int


@pytest.fixture
def world(app, caller, dispatcher) -> World:  # type: ignore[no-untyped-def]
    open_withheld_ticket(caller)
    withheld = newest_number(app)
    open_giulias_ticket(caller)
    giulias = newest_number(app)
    luca = add_user(app, "Luca Ferri", "technician", skills="network")
    with app.config["SESSIONMAKER"]() as session:
        giulia_id = get_contact_by_phone(session, GIULIA).id
    return World(dispatcher, luca, withheld, giulias, giulia_id)


@dataclass(frozen=True)
class Case:
    action: str
    ticket: str  # which of the world's tickets: withheld or giulias
    good: Callable[[World], dict[str, Any]]
    changed: Callable[[dict[str, Any], World], bool]  # the ticket after the good form
    kind: str  # its new thread entry
    bad: dict[str, Any] | None  # a form with a bad field ...
    field: str  # ... this one ...
    message: str  # ... and what is said beside it (in Italian, the dispatcher's language)
    before: Callable[[Any, str], None] = lambda app, number: None


CASES = [
    Case(
        "urgency",
        "giulias",
        lambda w: {"urgency": "low", "reason": "Funziona tutto tranne una stampante"},
        lambda t, w: t["urgency"] == "low" and t["urgency_confirmed_at"] is not None,
        "urgency_set",
        {"urgency": "urgentissima", "reason": "Perché sì"},
        "urgency",
        "Non è una opzione valida",
    ),
    Case(
        "match",
        "withheld",
        lambda w: {"contact": str(w.giulia_id), "save_number": "y"},
        lambda t, w: t["contact_id"] == w.giulia_id and t["customer_id"] is not None and not t["needs_match"],
        "caller_matched",
        {"contact": "999999"},
        "contact",
        "Non è una opzione valida",
    ),
    Case(
        "phase",
        "withheld",
        lambda w: {"phase": "triage"},
        lambda t, w: t["status"] == "triage",
        "phase_moved",
        {"phase": "resolved"},  # not from received: the rules' own words
        "phase",
        "Una richiesta in fase ricevuta non può passare a risolta.",
    ),
    Case(
        "estimate",
        "giulias",
        lambda w: {"when": "2031-07-15T10:30"},  # summer: Rome is UTC+2
        lambda t, w: t["estimated_restore_at"] == datetime(2031, 7, 15, 8, 30, tzinfo=UTC),
        "restore_estimated",
        {"when": "domani mattina"},
        "when",
        "Il valore non corrisponde ad una data e un orario validi",
    ),
    Case(
        "assign",
        "withheld",
        lambda w: {"technician": str(w.luca.id), "skill": "network"},
        lambda t, w: t["technician_id"] == w.luca.id and t["skill_needed"] == "network",
        "assigned",
        {"technician": "999999", "skill": ""},
        "technician",
        "Non è una opzione valida",
    ),
    Case(
        "vendor",
        "giulias",
        lambda w: {"vendor": "Rete Nord S.p.A.", "reference": "RN-4411", "restore_at": "2031-01-15T10:30"},
        lambda t, w: (
            (t["vendor_name"], t["vendor_reference"], t["vendor_restore_at"])
            == ("Rete Nord S.p.A.", "RN-4411", datetime(2031, 1, 15, 9, 30, tzinfo=UTC))
        ),  # winter: UTC+1
        "escalated",
        {"vendor": "   ", "reference": "RN-4411", "restore_at": "2031-01-15T10:30"},
        "vendor",
        "Questo campo è obbligatorio.",
    ),
    Case(
        "device",
        "giulias",
        lambda w: {"device": "Portatile ThinkPad T14"},
        lambda t, w: t["courtesy_device"] == "Portatile ThinkPad T14" and t["courtesy_lent_at"] is not None,
        "device_lent",
        {"device": "x" * 201},
        "device",
        "Il valore non può essere più lungo di 200 caratteri.",
    ),
    Case(
        "device-return",
        "giulias",
        lambda w: {},
        lambda t, w: t["courtesy_returned_at"] is not None,
        "device_returned",
        None,  # nothing to type: only the token
        "",
        "",
        before=lambda app, number: update(
            app, number, courtesy_device="Portatile ThinkPad T14", courtesy_lent_at=datetime.now(UTC)
        ),
    ),
    Case(
        "note",
        "withheld",
        lambda w: {"text": "Richiamato alle 10: non risponde."},
        lambda t, w: t["events"][-1][1] == {"note": "Richiamato alle 10: non risponde."},
        "note",
        {"text": "  "},
        "text",
        "Questo campo è obbligatorio.",
    ),
    Case(
        "reply",
        "giulias",
        lambda w: {"text": "Il tecnico arriva alle 15."},
        lambda t, w: len(t["emails"]) > 0,
        "reply",
        {"text": ""},
        "text",
        "Questo campo è obbligatorio.",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.action for case in CASES])
def test_each_action_refuses_a_wrong_token_and_bad_input_then_changes_the_ticket_and_its_thread(
    app, client, world, case
):
    number = getattr(world, case.ticket)
    case.before(app, number)
    sign_in(client, world.dispatcher)
    token = csrf_token(client, number)
    assert f'action="/console/tickets/{number}/{case.action}"' in client.get(f"/console/tickets/{number}").get_data(
        as_text=True
    )
    untouched = state(app, number)
    emails_before = len(untouched["emails"])

    forged = post(client, number, case.action, case.good(world), "not-the-token")
    assert forged.status_code == 400
    missing = client.post(f"/console/tickets/{number}/{case.action}", data=case.good(world))
    assert missing.status_code == 400
    assert state(app, number) == untouched

    if case.bad is not None:
        refused = post(client, number, case.action, case.bad, token)
        assert refused.status_code == 400
        assert error_beside(refused, case.action, case.field) == case.message
        assert state(app, number) == untouched

    done = post(client, number, case.action, case.good(world), token)
    assert done.status_code == 302
    assert done.headers["Location"].endswith(f"/console/tickets/{number}")
    after = state(app, number)
    assert case.changed(after, world)
    assert after["events"][: len(untouched["events"])] == untouched["events"]
    kind, _, user_id = after["events"][-1]
    assert (kind, user_id) == (case.kind, world.dispatcher.id)
    assert len(after["events"]) == len(untouched["events"]) + 1
    if case.action not in ("estimate", "reply", "match"):
        assert len(after["emails"]) == emails_before  # only the customer's words are emailed

    page = client.get(done.headers["Location"])
    assert words("it")[f"ticket_done_{case.action.replace('-', '_')}"] in text_of(page)  # flashed after the redirect
    with app.config["SESSIONMAKER"]() as session:
        newest = session.scalars(select(TicketEvent).order_by(TicketEvent.id.desc()).limit(1)).one()
        assert f"Dora Galli · {local_time(newest.at)} {thread.render(newest, 'it')}" in text_of(page)


def test_the_rules_refusals_are_said_beside_their_field_and_change_nothing(app, client, world):
    sign_in(client, world.dispatcher)
    token = csrf_token(client, world.giulias)
    untouched = state(app, world.giulias)
    unexplained = post(client, world.giulias, "urgency", {"urgency": "critical", "reason": ""}, token)
    assert unexplained.status_code == 400
    assert error_beside(unexplained, "urgency", "reason") == "Per cambiare l'urgenza serve un motivo."
    past = post(client, world.giulias, "estimate", {"when": "2020-01-01T09:00"}, token)
    assert past.status_code == 400
    assert error_beside(past, "estimate", "when") == "Deve essere nel futuro."
    assert state(app, world.giulias) == untouched

    update(app, world.giulias, status="resolved", courtesy_device="Portatile", courtesy_lent_at=datetime.now(UTC))
    untouched = state(app, world.giulias)
    still_out = post(client, world.giulias, "phase", {"phase": "closed"}, token)
    assert still_out.status_code == 400
    assert error_beside(still_out, "phase", "phase") == (
        "Prima di chiudere la richiesta, il dispositivo sostitutivo (Portatile) deve essere restituito."
    )
    assert state(app, world.giulias) == untouched

    untouched = state(app, world.withheld)
    nobody = post(client, world.withheld, "reply", {"text": "Buongiorno"}, token)  # no contact to write to yet
    assert nobody.status_code == 400
    assert (
        '<p class="field-error" role="alert">Nessun contatto a cui scrivere: '
        "prima va associato il chiamante a un contatto.</p>"
    ) in html.unescape(nobody.get_data(as_text=True))
    assert state(app, world.withheld) == untouched


def test_messages_are_in_the_users_language(app, client, world):
    ellen = add_user(app, "Ellen Park", "dispatcher", language="en")
    sign_in(client, ellen)
    token = csrf_token(client, world.giulias)
    unexplained = post(client, world.giulias, "urgency", {"urgency": "critical", "reason": ""}, token)
    assert error_beside(unexplained, "urgency", "reason") == "Changing the urgency needs a reason."
    malformed = post(client, world.giulias, "estimate", {"when": "tomorrow"}, token)
    assert error_beside(malformed, "estimate", "when") == "Not a valid datetime value."
    assert "Urgency saved." in text_of(
        client.get(
            post(client, world.giulias, "urgency", {"urgency": "critical", "reason": "Down"}, token).headers["Location"]
        )
    )


def test_a_technician_is_refused_someone_elses_ticket_and_a_dispatchers_action_on_their_own(app, client, world):
    sign_in(client, world.luca)
    token = csrf_token(client, world.withheld)
    untouched = state(app, world.withheld)
    for action, fields in (("note", {"text": "Ci penso io"}), ("phase", {"phase": "triage"})):
        assert post(client, world.withheld, action, fields, token).status_code == 403
    assert state(app, world.withheld) == untouched

    update(app, world.withheld, technician_id=world.luca.id)
    untouched = state(app, world.withheld)
    assert post(client, world.withheld, "urgency", {"urgency": "low", "reason": "Poca cosa"}, token).status_code == 403
    assert post(client, world.withheld, "assign", {"technician": str(world.luca.id)}, token).status_code == 403
    assert post(client, world.withheld, "phase", {"phase": "closed"}, token).status_code == 403  # closing
    assert state(app, world.withheld) == untouched
    assert post(client, world.withheld, "note", {"text": "Ci penso io"}, token).status_code == 302  # their own work
    assert state(app, world.withheld)["events"][-1] == ("note", {"note": "Ci penso io"}, world.luca.id)


def test_an_unknown_action_or_ticket_is_not_found(client, world):
    sign_in(client, world.dispatcher)
    token = csrf_token(client, world.withheld)
    assert post(client, world.withheld, "delete", {}, token).status_code == 404
    assert post(client, ticket_number(100_777), "note", {"text": "?"}, token).status_code == 404
