"""A ticket's thread is kept as facts and said in the reader's language, complete in every language, never failing."""

from __future__ import annotations

import ast
import string
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

import prompts
from helpdesk import thread
from ivr.jobs.follow_up import RUNNERS, SENT_EVENT
from storage.contacts import get_contact_by_phone
from storage.models import Call, Ticket
from storage.tickets import EVENT_KINDS, URGENCIES, open_ticket_for_call, record_event
from tests.conftest import API_TOKEN, GIULIA
from tests.test_ticket_actions import ACTION_EXAMPLES

PROJECT = Path(__file__).resolve().parent.parent
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

# One entry of each kind, with the facts the code records for it.
EXAMPLES: dict[str, dict[str, object]] = {
    "opened": {
        "by": "hangup",
        "urgency": "high",
        "severity": 1,
        "unregistered": True,
        "callback_number": GIULIA,
        "suggested_contact_id": 1,
        "suggested_contact": "Giulia Rossi",
        "suggested_customer": "Officine Brambilla",
        "voicemail": True,
    },
    "no_audio": {},
    "recording": {"bytes": 123456},
    "recording_refused": {"error": "host evil.example.com is not allowed"},
    "recording_unavailable": {"error": "HTTP 404 from api.twilio.com"},
    "transcript": {"words": "La stampante non stampa più."},
    "transcription_failed": {"error": "no model"},
    "urgency_raised": {"from": "normal", "to": "critical", "words": "server down"},
    "no_confirmation": {"why": "not_in_directory"},
    "email": {"email": "confirmation", "to": "giulia.rossi@brambilla.example.it"},
    "dispatch_email": {"email": "dispatch", "to": "dispatch@helpdesk.example.com"},
    "voice_message_email": {"email": "voice_message", "to": "luca@helpdesk.example.com"},
    "email_refused": {"email": "confirmation", "to": "giulia@example.it", "answer": "550 mailbox unavailable"},
    "email_failed": {"to": "giulia@example.it", "error": "SMTPServerDisconnected: gone"},
    "follow_up_failed": {"work": "follow_up", "starts": 3},
    "follow_up_retried": {"work": "email"},
    "oncall_sms": {"alert": "alert", "to": "*********567", "sid": "SM" + "0" * 32},
    "oncall_sms_refused": {"alert": "reminder", "to": "*********567", "answer": "HTTP 400, error 21211: Invalid 'To'"},
    "voice_message": {"recording_sid": "RE123"},
    "voice_message_transcript": {"words": "Ora non funziona niente."},
    "fallback": {},
    "extra_recording": {"recording_sid": "RE456", "url": "https://api.twilio.com/recordings/RE456"},
    "note": {"note": "Richiamato il cliente."},
    **ACTION_EXAMPLES,  # the kinds the console's actions write
}


def templates(entry: thread.Entry) -> list[str]:
    return [entry] if isinstance(entry, str) else list(entry.values() if isinstance(entry, dict) else entry)


def entry_placeholders(entry: thread.Entry) -> set[str]:
    return set().union(*(thread.placeholders(template) for template in templates(entry)))


def vocabularies(entry: thread.Entry) -> set[str]:
    """The [words.*] a catalogue entry names in its format specs."""
    specs = {spec for template in templates(entry) for _, _, spec, _ in string.Formatter().parse(template)}
    return specs - {"", None, "number"}


def test_every_kind_of_event_has_words_in_every_language_and_nothing_else():
    for language in prompts.LANGUAGES:
        assert set(thread.catalogue(language).kinds) == EVENT_KINDS, language


def test_every_language_says_the_same_facts_in_the_same_shape():
    italian = thread.catalogue("it")
    for language in prompts.LANGUAGES:
        kinds = thread.catalogue(language).kinds
        for kind, entry in italian.kinds.items():
            assert type(kinds[kind]) is type(entry), (language, kind)
            assert entry_placeholders(kinds[kind]) == entry_placeholders(entry), (language, kind)
            if isinstance(entry, dict):  # the same sentences, in the same order
                assert list(kinds[kind]) == list(entry), (language, kind)
            if isinstance(entry, list):  # the same alternatives, each with the same facts
                assert [thread.placeholders(t) for t in kinds[kind]] == [thread.placeholders(t) for t in entry]


def test_every_vocabulary_is_complete_in_every_language_and_every_one_named_exists():
    italian = thread.catalogue("it")
    for language in prompts.LANGUAGES:
        catalogue = thread.catalogue(language)
        assert {name: set(words) for name, words in catalogue.words.items()} == {
            name: set(words) for name, words in italian.words.items()
        }, language
        named = set().union(*(vocabularies(entry) for entry in catalogue.kinds.values()))
        assert named <= set(catalogue.words), language


def test_the_codes_the_code_records_have_words():
    words = thread.catalogue("it").words
    assert set(URGENCIES) <= set(words["urgency"])
    assert set(SENT_EVENT) <= set(words["email_sent"]) and set(SENT_EVENT) <= set(words["email"])
    assert set(RUNNERS) <= set(words["work"])
    assert opened_by_codes() <= set(words["opener"])


def opened_by_codes() -> set[str]:
    """Every `opened_by="..."` the project's code passes (conditional values included)."""
    codes: set[str] = set()
    for package in ("callflows", "helpdesk", "ivr", "storage"):
        for path in (PROJECT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.keyword) and node.arg == "opened_by":
                    codes |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)}
    assert codes, "no opened_by found: has the opening moved?"
    return codes


def test_the_examples_cover_every_kind():
    assert set(EXAMPLES) == EVENT_KINDS


@pytest.mark.parametrize("language", prompts.LANGUAGES)
@pytest.mark.parametrize("kind", sorted(EVENT_KINDS))
def test_every_kind_is_said_from_its_facts(kind, language):
    facts = EXAMPLES[kind]
    said = thread.render_facts(kind, facts, language)
    assert said.strip() and "{" not in said
    assert said != thread.as_is(kind, facts)


def test_the_opening_says_each_fact_it_holds():
    italian = thread.render_facts("opened", EXAMPLES["opened"], "it")
    assert italian.startswith(
        "Richiesta aperta dal chiamante che ha riattaccato dopo il messaggio, urgenza provvisoria alta."
    )
    assert "è tutto fermo" in italian and GIULIA in italian and "Giulia Rossi, Officine Brambilla" in italian
    english = thread.render_facts("opened", {"by": "line", "urgency": "critical", "unregistered": False}, "en")
    assert english == "Ticket opened by the caller on the line, provisional urgency critical."


def test_numbers_are_grouped_as_each_language_writes_them():
    assert thread.render_facts("recording", {"bytes": 1234567}, "it") == "Registrazione scaricata (1.234.567 byte)."
    assert thread.render_facts("recording", {"bytes": 1234567}, "en") == "Recording downloaded (1,234,567 bytes)."
    assert thread.render_facts("recording", {"bytes": 0}, "en") == "Recording downloaded (0 bytes)."


def test_alternatives_follow_the_facts():
    assert thread.render_facts("transcript", {"words": ""}, "en") == (
        "The recording holds no speech: the transcript is empty."
    )
    assert thread.render_facts("recording", {"recording_sid": "RE1"}, "en") == (
        "The recording of the call arrived after the ticket was opened."
    )
    killed = thread.render_facts("follow_up_failed", {"work": "follow_up", "starts": 3}, "en")
    assert "started 3 times and never ended" in killed and "retry-failed" in killed


def test_an_entry_written_before_facts_is_said_as_it_was_in_every_language():
    old = {"note": 'Urgency raised from normal to high: the caller said "server down".'}
    for language in prompts.LANGUAGES:
        assert thread.render_facts("urgency_raised", old, language) == old["note"]


def test_an_unknown_language_gets_italian():
    facts = EXAMPLES["urgency_raised"]
    assert thread.render_facts("urgency_raised", facts, "fr") == thread.render_facts("urgency_raised", facts, "it")
    assert "ora critica, prima normale" in thread.render_facts("urgency_raised", facts, "fr")


def test_a_kind_or_a_word_missing_in_english_is_said_in_italian(monkeypatch):
    english = thread.catalogue("en")
    bare = replace(english, kinds={k: v for k, v in english.kinds.items() if k != "no_audio"}, words={})
    real = thread.catalogue
    monkeypatch.setattr(thread, "catalogue", lambda language: bare if language == "en" else real(language))
    assert thread.render_facts("no_audio", {}, "en") == "Il chiamante non ha lasciato una descrizione registrata."
    said = thread.render_facts("urgency_raised", EXAMPLES["urgency_raised"], "en")
    assert said == 'Urgency raised from normale to critica: the caller said "server down".'


@pytest.mark.parametrize(
    ("kind", "facts"),
    [
        ("no_such_kind", {"what": "a dispatcher's call", "minutes": 5}),
        ("no_such_kind", {}),
        ("urgency_raised", {"from": "normal"}),  # a fact missing
        ("recording", {"bytes": "many"}),  # a fact of the wrong type
        ("urgency_raised", {"from": "normal", "to": "extreme", "words": "fire"}),  # a code without words
        ("transcript", {}),
    ],
)
def test_an_entry_that_cannot_be_said_shows_its_facts_and_never_raises(kind, facts):
    for language in (*prompts.LANGUAGES, "xx"):
        said = thread.render_facts(kind, facts, language)
        assert isinstance(said, str) and said
        if kind == "no_such_kind":
            assert said == thread.as_is(kind, facts)
    assert thread.as_is("no_such_kind", {"what": "a call", "minutes": 5}) == "what: a call; minutes: 5"
    assert "extreme" in thread.render_facts("urgency_raised", {"from": "normal", "to": "extreme", "words": "x"}, "it")


def test_an_unknown_kind_is_not_recorded(app):
    with app.config["SESSIONMAKER"]() as session, pytest.raises(ValueError, match="kind"):
        record_event(session, Ticket(urgency="normal"), "no_such_kind", what="a typo")


# -- the API ---------------------------------------------------------------------------------


@pytest.fixture
def giulias_ticket(app, directory) -> str:  # type: ignore[no-untyped-def]
    """A ticket Giulia opened on the line (everything stopped), with its urgency raised by her words."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        call = Call(call_sid="CA" + uuid.uuid4().hex, caller=GIULIA, language="it", attempts=0, severity=1)
        call.contact = get_contact_by_phone(session, GIULIA)
        call.customer = call.contact.customer if call.contact else None
        session.add(call)
        session.flush()
        ticket = open_ticket_for_call(session, call, "high", voicemail=False, opened_by="line")
        record_event(session, ticket, "urgency_raised", **{"from": "high", "to": "critical"}, words="server down")
        return ticket.number or ""


def test_the_api_says_the_thread_in_italian_unless_asked_otherwise(client, giulias_ticket):
    italian = client.get(f"/api/tickets/{giulias_ticket}", headers=AUTH).get_json()["events"]
    english = client.get(f"/api/tickets/{giulias_ticket}?lang=en", headers=AUTH).get_json()["events"]
    unknown = client.get(f"/api/tickets/{giulias_ticket}?lang=xx", headers=AUTH).get_json()["events"]
    assert [e["kind"] for e in italian] == ["opened", "no_audio", "urgency_raised"]
    assert italian[2]["facts"] == english[2]["facts"] == {"from": "high", "to": "critical", "words": "server down"}
    assert italian[2]["text"] == "Urgenza alzata: ora critica, prima alta. Il chiamante ha detto «server down»."
    assert english[2]["text"] == 'Urgency raised from high to critical: the caller said "server down".'
    assert english[0]["text"].startswith("Ticket opened by the caller on the line, provisional urgency high.")
    assert unknown == italian


def test_a_callers_tickets_are_said_in_the_language_asked(client, giulias_ticket):
    listed = client.get(f"/api/tickets?caller={GIULIA}&lang=en", headers=AUTH).get_json()["tickets"]
    [ticket] = [t for t in listed if t["number"] == giulias_ticket]
    assert ticket["events"][1]["text"] == "The caller left no recorded description."
    listed = client.get(f"/api/tickets?caller={GIULIA}", headers=AUTH).get_json()["tickets"]
    [ticket] = [t for t in listed if t["number"] == giulias_ticket]
    assert ticket["events"][1]["text"] == "Il chiamante non ha lasciato una descrizione registrata."


def test_the_dispatchers_notice_tells_the_thread_in_italian(app, giulias_ticket):
    from ivr.jobs import mail

    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == giulias_ticket)).one()
        body = mail.ticket_emails(ticket, replace(app.config["SETTINGS"], dispatch_email="d@example.com"))[-1].body
    assert "urgency_raised: Urgenza alzata: ora critica, prima alta." in body
    assert "opened: Richiesta aperta dal chiamante in linea, urgenza provvisoria alta." in body
    assert "Urgency" not in body
