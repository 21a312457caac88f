"""The customer directory: importing it from CSV, and finding callers in it."""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from storage.models import Contact, Customer
from storage.phones import to_e164
from storage.statements import Alone, Statement, run

HEADER = ["customer_code", "customer_name", "sla", "contact_name", "email", "phone", "referent"]
SLA_LEVELS = ("base", "business", "premium")
TEXT_FIELDS = ("customer_name", "contact_name", "email")
# Controls, format characters (bidi overrides, zero-width...), surrogates, private use,
# unassigned code points, and line or paragraph separators: never part of a name or address.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_UNNAMED = {"Cs": "a surrogate", "Co": "a private use character", "Cn": "an unassigned character"}


class ContactImportError(Exception):
    """The file has bad rows; `problems` names each one by its line number."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ImportSummary:
    customers_added: int
    customers_updated: int
    contacts_added: int
    contacts_updated: int


@dataclass(frozen=True)
class _Row:
    customer_code: str
    customer_name: str
    sla: str
    contact_name: str
    email: str
    phone: str
    referent: bool


def import_contacts(session: Session, text: str) -> ImportSummary:
    """Load a directory CSV; all or nothing: any bad row raises ContactImportError and writes nothing."""
    rows = _parse(text)
    counts = {"customers_added": 0, "customers_updated": 0, "contacts_added": 0, "contacts_updated": 0}
    customers: dict[str, Customer] = {}
    for row in rows:
        customer = customers.get(row.customer_code) or get_customer_by_code(session, row.customer_code)
        if customer is None:
            customer = Customer(code=row.customer_code, name=row.customer_name, sla=row.sla)
            session.add(customer)
            counts["customers_added"] += 1
        elif row.customer_code not in customers and (customer.name, customer.sla) != (row.customer_name, row.sla):
            counts["customers_updated"] += 1
        customer.name, customer.sla = row.customer_name, row.sla
        customers[row.customer_code] = customer
        session.flush()

        contact = session.scalars(
            select(Contact).where(Contact.customer_id == customer.id, Contact.email == row.email)
        ).one_or_none()
        if contact is None:
            session.add(
                Contact(
                    customer=customer, name=row.contact_name, email=row.email, phone=row.phone, referent=row.referent
                )
            )
            counts["contacts_added"] += 1
        else:
            if (contact.name, contact.phone, contact.referent) != (row.contact_name, row.phone, row.referent):
                counts["contacts_updated"] += 1
            contact.name, contact.phone, contact.referent = row.contact_name, row.phone, row.referent
        session.flush()
    return ImportSummary(**counts)


def _parse(text: str) -> list[_Row]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != HEADER:
        raise ContactImportError([f"line 1: the header must be exactly: {','.join(HEADER)}"])
    rows: list[_Row] = []
    problems: list[str] = []
    line_after = reader.line_num
    for fields in reader:
        # A quoted field may span lines: name the line where the record starts.
        line, line_after = line_after + 1, reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(HEADER):
            problems.append(f"line {line}: expected {len(HEADER)} fields, found {len(fields)}")
            continue
        # Names and emails lose only plain spaces at their ends: other whitespace there is refused, not hidden.
        values = {
            name: f.strip(" ") if name in TEXT_FIELDS else f.strip() for name, f in zip(HEADER, fields, strict=True)
        }
        row, row_problems = _check_row(values)
        problems.extend(f"line {line}: {p}" for p in row_problems)
        if row is not None:
            rows.append(row)
    if problems:
        raise ContactImportError(problems)
    return rows


def _check_row(values: dict[str, str]) -> tuple[_Row | None, list[str]]:
    problems: list[str] = []
    unprintable = {name: _unprintable(values[name]) for name in TEXT_FIELDS}
    problems.extend(
        f"{name} {values[name]!r} contains {found}: only printable text and plain spaces are allowed"
        for name, found in unprintable.items()
        if found
    )
    if not values["customer_code"].isdigit():
        problems.append(f"customer_code {values['customer_code']!r} must be digits only")
    if not values["customer_name"]:
        problems.append("customer_name is empty")
    sla = values["sla"].lower()
    if sla not in SLA_LEVELS:
        problems.append(f"sla {values['sla']!r} is not one of {', '.join(SLA_LEVELS)}")
    if not values["contact_name"]:
        problems.append("contact_name is empty")
    email = ""
    if not unprintable["email"]:
        try:
            email = validate_email(values["email"], check_deliverability=False).normalized
        except EmailNotValidError:
            problems.append(f"email {values['email']!r} is not a valid address")
    phone = to_e164(values["phone"])
    if phone is None:
        problems.append(f"phone {values['phone']!r} is not a valid phone number")
    referent = values["referent"].lower()
    if referent not in ("yes", "no"):
        problems.append(f"referent {values['referent']!r} must be yes or no")
    if problems:
        return None, problems
    assert phone is not None
    return _Row(
        values["customer_code"], values["customer_name"], sla, values["contact_name"], email, phone, referent == "yes"
    ), []


def _unprintable(text: str) -> str | None:
    """The first character of `text` that is not ordinary printable text or a plain space, described; else None."""
    for char in text:
        category = unicodedata.category(char)
        if category in _UNPRINTABLE_CATEGORIES or (char.isspace() and char != " "):
            name = unicodedata.name(char, "") or _UNNAMED.get(category, "a control character")
            return f"U+{ord(char):04X} ({name.lower()})"
    return None


def get_customer_by_code(session: Session, code: str) -> Customer | None:
    return session.scalars(select(Customer).where(Customer.code == code)).one_or_none()


@dataclass(frozen=True)
class Identity:
    """Who a number belongs to, as the line needs it: the contact, its customer, the customer's name and SLA."""

    contact_id: int
    customer_id: int
    company: str
    sla: str


_contacts, _customers = Contact.__table__, Customer.__table__
_IDENTITY_BY_PHONE = Statement(
    select(_contacts.c.id, _contacts.c.customer_id, _customers.c.name, _customers.c.sla)
    .join(_customers, _customers.c.id == _contacts.c.customer_id)
    .where(_contacts.c.phone == bindparam("phone"))
    .order_by(_contacts.c.id)
    .limit(1)
)


def identify_by_phone(connection: Connection | Alone, phone: str) -> Identity | None:
    """The contact with this E.164 number (the first one, if colleagues share a line), in one query."""
    rows = run(connection, _IDENTITY_BY_PHONE, {"phone": phone})
    return Identity(*rows[0]) if rows else None


def get_contact_by_phone(session: Session, phone: str) -> Contact | None:
    """The contact with this E.164 number (the first one, if colleagues share a line)."""
    return session.scalars(select(Contact).where(Contact.phone == phone).order_by(Contact.id)).first()


def get_contact_of_customer_by_phone(session: Session, customer_id: int, phone: str) -> Contact | None:
    """The customer's contact with this E.164 number (the first one, if colleagues share a line)."""
    by_phone = select(Contact).where(Contact.customer_id == customer_id, Contact.phone == phone)
    return session.scalars(by_phone.order_by(Contact.id)).first()
