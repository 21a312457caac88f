"""Loading the customer directory with `flask import-contacts`, and creating the schema with `flask init-db`."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, inspect, select

from ivr import create_app
from ivr.settings import Secret, Settings
from storage.models import Contact, Customer
from tests.conftest import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, DIRECTORY_CSV

HEADER = "customer_code,customer_name,sla,contact_name,email,phone,referent\n"


def run(app, *args: str):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def import_file(app, tmp_path, text: str, name: str = "contacts.csv"):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return run(app, "import-contacts", str(path))


def output(result) -> str:  # type: ignore[no-untyped-def]
    """Everything the command printed, on stdout and stderr."""
    return result.output + (result.stderr if result.stderr and result.stderr not in result.output else "")


def counts(app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        return (
            session.scalar(select(func.count()).select_from(Customer)),
            session.scalar(select(func.count()).select_from(Contact)),
        )


def customer(app, code: str) -> Customer:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        found = session.scalars(select(Customer).where(Customer.code == code)).one()
        _ = found.contacts
        return found


def contact(app, email: str) -> Contact:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        return session.scalars(select(Contact).where(Contact.email == email)).one()


def test_a_good_file_imports_customers_and_contacts_with_e164_phones(app, tmp_path):
    result = import_file(app, tmp_path, DIRECTORY_CSV)
    assert result.exit_code == 0, output(result)
    assert "customers: 2 added, 0 updated; contacts: 3 added, 0 updated" in result.output
    assert counts(app) == (2, 3)

    brambilla = customer(app, "1001")
    assert brambilla.name == "Officine Brambilla" and brambilla.sla == "premium"
    assert [c.name for c in brambilla.contacts] == ["Giulia Rossi", "Marco Bianchi"]
    assert [c.referent for c in brambilla.contacts] == [False, True]
    assert contact(app, "giulia.rossi@brambilla.example.it").phone == "+390392301122"
    assert contact(app, "marco.bianchi@brambilla.example.it").phone == "+393331234567"
    assert contact(app, "anna@studioverdi.example.it").phone == "+390288997766"
    assert customer(app, "2002").sla == "base"


@pytest.mark.parametrize(
    "written", ["0392847438", "+390392847438", "0039 039 2847438", "039 284 7438", "+39 039 2847438"]
)
def test_phone_numbers_are_stored_in_e164_however_they_are_written(app, tmp_path, written):
    result = import_file(
        app, tmp_path, HEADER + f"3003,Ferri Srl,business,Paolo Ferri,paolo@ferri.example.it,{written},yes\n"
    )
    assert result.exit_code == 0, output(result)
    assert contact(app, "paolo@ferri.example.it").phone == "+390392847438"


def test_the_example_directory_imports_cleanly(app):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "contacts.csv"
    result = run(app, "import-contacts", str(example))
    assert result.exit_code == 0, output(result)
    assert counts(app) == (3, 8)
    with app.config["SESSIONMAKER"]() as session:
        phones = list(session.scalars(select(Contact.phone)))
    assert all(re.fullmatch(r"\+39\d{6,11}", phone) for phone in phones), phones


def test_importing_again_updates_and_never_duplicates(app, tmp_path):
    assert import_file(app, tmp_path, DIRECTORY_CSV).exit_code == 0
    same_again = import_file(app, tmp_path, DIRECTORY_CSV)
    assert same_again.exit_code == 0, output(same_again)
    assert "customers: 0 added, 0 updated; contacts: 0 added, 0 updated" in same_again.output
    assert counts(app) == (2, 3)

    changed = DIRECTORY_CSV.replace("Studio Verdi,base", "Studio Verdi & Figli,business").replace(
        "039 2301122,no", "039 2301122,yes"
    )
    result = import_file(app, tmp_path, changed, name="changed.csv")
    assert result.exit_code == 0, output(result)
    assert "customers: 0 added, 1 updated; contacts: 0 added, 1 updated" in result.output
    assert counts(app) == (2, 3)
    verdi = customer(app, "2002")
    assert verdi.name == "Studio Verdi & Figli" and verdi.sla == "business"
    assert contact(app, "giulia.rossi@brambilla.example.it").referent is True


def test_a_new_contact_of_a_known_customer_is_added_to_it(app, tmp_path):
    assert import_file(app, tmp_path, DIRECTORY_CSV).exit_code == 0
    more = DIRECTORY_CSV + "2002,Studio Verdi,base,Luca Verdi,luca@studioverdi.example.it,02 8899 7700,no\n"
    result = import_file(app, tmp_path, more, name="more.csv")
    assert result.exit_code == 0, output(result)
    assert "customers: 0 added, 0 updated; contacts: 1 added, 0 updated" in result.output
    assert counts(app) == (2, 4)
    assert [c.name for c in customer(app, "2002").contacts] == ["Anna Verdi", "Luca Verdi"]


BAD_FILE = HEADER + (
    "4004,Good Row Srl,base,Ada Bene,ada@goodrow.example.it,02 1234 5678,no\n"  # line 2: fine
    "4005,Bad Phone Srl,base,Bruno Tel,bruno@badphone.example.it,12345,no\n"  # line 3
    "4006,Bad Mail Srl,base,Carla Mail,carla-at-nowhere,02 1234 5679,no\n"  # line 4
    "4007,Bad Sla Srl,gold,Dario Sla,dario@badsla.example.it,02 1234 5670,no\n"  # line 5
    "40A8,Bad Code Srl,base,Elena Code,elena@badcode.example.it,02 1234 5671,no\n"  # line 6
    "4009,Maybe Srl,base,Franco Forse,franco@maybe.example.it,02 1234 5672,maybe\n"  # line 7
    "4010,Short Row Srl,base,Gina Corta\n"  # line 8
    "4011,Good Too Srl,premium,Ugo Bene,ugo@goodtoo.example.it,02 1234 5673,yes\n"  # line 9: fine
)


def test_a_file_with_bad_rows_names_each_line_and_writes_nothing(app, tmp_path):
    result = import_file(app, tmp_path, BAD_FILE)
    assert result.exit_code != 0
    said = output(result)
    expected = {
        3: "phone '12345'",
        4: "email 'carla-at-nowhere'",
        5: "sla 'gold'",
        6: "customer_code '40A8'",
        7: "referent 'maybe'",
        8: "expected 7 fields, found 4",
    }
    lines = said.splitlines()
    for number, reason in expected.items():
        assert any(f"line {number}:" in line and reason in line for line in lines), (number, said)
    assert not any(f"line {n}:" in said for n in (1, 2, 9))  # good lines are not blamed
    assert "nothing imported" in said
    assert counts(app) == (0, 0)  # not even the good rows before the bad ones


def test_a_bad_file_leaves_the_existing_directory_untouched(app, tmp_path):
    assert import_file(app, tmp_path, DIRECTORY_CSV).exit_code == 0
    bad = (
        DIRECTORY_CSV.replace("Studio Verdi,base", "Studio Rossi,premium")
        + "2002,Studio Verdi,base,Luca Verdi,luca@studioverdi.example.it,02 8899 7700,no\n"
        + "5005,Nuovo Cliente,base,Zeno Nuovo,zeno@nuovo.example.it,not a phone,no\n"
    )
    result = import_file(app, tmp_path, bad, name="bad.csv")
    assert result.exit_code != 0
    assert "line 6:" in output(result) and "phone 'not a phone'" in output(result)
    assert counts(app) == (2, 3)
    verdi = customer(app, "2002")
    assert verdi.name == "Studio Verdi" and verdi.sla == "base"


@pytest.mark.parametrize(
    "header",
    [
        "code,name,sla,contact,email,phone,referent\n",
        "customer_code,customer_name,sla,contact_name,email,phone\n",
        "customer_name,customer_code,sla,contact_name,email,phone,referent\n",
        "",
    ],
    ids=["renamed", "missing column", "reordered", "empty file"],
)
def test_a_file_with_the_wrong_header_is_refused(app, tmp_path, header):
    body = (
        ""
        if not header
        else "1001,Officine Brambilla,premium,Giulia Rossi,giulia@brambilla.example.it,039 2301122,no\n"
    )
    result = import_file(app, tmp_path, header + body)
    assert result.exit_code != 0
    assert "line 1:" in output(result) and "header" in output(result)
    assert counts(app) == (0, 0)


def test_a_byte_order_mark_before_the_header_is_accepted(app, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeff".encode() + DIRECTORY_CSV.encode())
    result = run(app, "import-contacts", str(path))
    assert result.exit_code == 0, output(result)
    assert counts(app) == (2, 3)


def test_a_missing_file_is_refused(app, tmp_path):
    result = run(app, "import-contacts", str(tmp_path / "nope.csv"))
    assert result.exit_code != 0
    assert counts(app) == (0, 0)


def fresh_sqlite_app(tmp_path):  # type: ignore[no-untyped-def]
    settings = Settings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=Secret(AUTH_TOKEN),
        api_token=Secret(API_TOKEN),
        secret_key=Secret("test-secret-key"),
        database_url=f"sqlite:///{tmp_path / 'fresh.db'}",
        spool_dir=tmp_path / "spool",
        recordings_dir=tmp_path / "recordings",
    )
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


def test_init_db_creates_the_schema_on_a_fresh_sqlite_file_and_can_run_again(tmp_path):
    app = fresh_sqlite_app(tmp_path)
    try:
        assert not (tmp_path / "fresh.db").exists() or inspect(app.config["ENGINE"]).get_table_names() == []
        first = run(app, "init-db")
        assert first.exit_code == 0, output(first)
        assert "database is up to date" in first.output
        tables = set(inspect(app.config["ENGINE"]).get_table_names())
        assert {"customers", "contacts", "calls", "tickets", "ticket_events", "pending_work"} <= tables

        imported = import_file(app, tmp_path, DIRECTORY_CSV)
        assert imported.exit_code == 0, output(imported)

        again = run(app, "init-db")
        assert again.exit_code == 0, output(again)
        assert "database is up to date" in again.output
        assert counts(app) == (2, 3)  # running it again keeps the data
    finally:
        app.config["ENGINE"].dispose()


GOOD_ROW = "4004,Good Row Srl,base,Ada Bene,ada@goodrow.example.it,02 1234 5678,no\n"
LAST_ROW = "4011,Good Too Srl,premium,Ugo Bene,ugo@goodtoo.example.it,02 1234 5673,yes\n"


@pytest.mark.parametrize(
    ("bad_row", "field", "shown"),
    [
        ("4005,Bell\x07 Srl,base,Bruno Bel,bruno@bell.example.it,02 1234 5679,no\n", "customer_name", "U+0007"),
        ("4005,Mirror Srl,base,\u202eBruno Rev,bruno@mirror.example.it,02 1234 5679,no\n", "contact_name", "U+202E"),
        ('4005,"Two\nLines Srl",base,Bruno Due,bruno@two.example.it,02 1234 5679,no\n', "customer_name", "U+000A"),
        ("4005,Nul Srl,base,Bruno\x00Nul,bruno@nul.example.it,02 1234 5679,no\n", "contact_name", "U+0000"),
        ("4005,Tab Srl,base,Bruno\tTab,bruno@tab.example.it,02 1234 5679,no\n", "contact_name", "U+0009"),
        ("4005,Wide Srl,base,Bruno Largo,bruno\u200b@wide.example.it,02 1234 5679,no\n", "email", "U+200B"),
        ("4005,Sep Srl\u2028,base,Bruno Sep,bruno@sep.example.it,02 1234 5679,no\n", "customer_name", "U+2028"),
        ("4005,Nbsp Srl,base,Bruno\u00a0Nbsp,bruno@nbsp.example.it,02 1234 5679,no\n", "contact_name", "U+00A0"),
    ],
    ids=[
        "bell",
        "rtl-override",
        "newline-in-quotes",
        "nul",
        "tab",
        "zero-width-space",
        "line-separator-at-the-end",
        "no-break-space",
    ],
)
def test_a_control_character_in_a_name_or_email_is_refused_naming_its_line_and_nothing_is_imported(
    app, tmp_path, bad_row, field, shown
):
    result = import_file(app, tmp_path, HEADER + GOOD_ROW + bad_row + LAST_ROW)
    assert result.exit_code != 0
    said = output(result)
    blamed = [line for line in said.splitlines() if "line " in line]
    assert len(blamed) == 1, said  # one problem, on the bad row's own (first) line
    assert blamed[0].strip().startswith(f"line 3: {field} ") and shown in blamed[0], said
    assert "nothing imported" in said
    assert counts(app) == (0, 0)


def test_the_refusal_of_a_control_character_never_prints_the_character_itself(app, tmp_path):
    row = "4005,Evil\u202e\x1b[2J Srl,base,Bruno,b@evil.example.it,02 1234 5679,no\n"
    result = import_file(app, tmp_path, HEADER + row)
    assert result.exit_code != 0
    said = output(result)
    assert "\u202e" not in said and "\x1b" not in said
    assert "line 2: customer_name" in said


@pytest.mark.parametrize(
    "name",
    ["Zoë D'Alessandro", "Ünal Şahin-Öztürk", "李小龍", "Ἀθηνᾶ Παππᾶ", "Nguyễn Thị Minh Khai", "O'Brien & Figli"],
)
def test_names_in_any_script_with_accents_and_punctuation_are_accepted(app, tmp_path, name):
    row = f'4005,"{name}",base,"{name}",zoe@accents.example.it,02 1234 5679,no\n'
    result = import_file(app, tmp_path, HEADER + row)
    assert result.exit_code == 0, output(result)
    assert customer(app, "4005").name == name
    assert contact(app, "zoe@accents.example.it").name == name
