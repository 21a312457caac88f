"""The console's users: dispatchers and technicians, their skills, and their passwords hashed with argon2.

Every password check runs exactly one argon2 verification at the current cost, whether
the account exists, has a password or not: how long a refusal takes says nothing about
who has an account. A hash made with older parameters is replaced at the next sign-in.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.contacts import _unprintable
from storage.models import User

DISPATCHER, TECHNICIAN = "dispatcher", "technician"
ROLES = (DISPATCHER, TECHNICIAN)
LANGUAGES = ("it", "en")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
# A skill is one lower-case word, letters or digits, with inner dashes: `network`, `voip`, `windows-server`.
SKILL = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")

_hasher = PasswordHasher()  # argon2id at argon2-cffi's current recommended cost


class UserError(ValueError):
    """The account's details are not acceptable; `problems` says each one."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def normal_email(email: str) -> str | None:
    """The address as accounts are known by (lower case), or None when it is not an email address."""
    text = email.strip()
    if not text or _unprintable(text):
        return None
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def parse_skills(text: str) -> tuple[tuple[str, ...], list[str]]:
    """The skills of `network, Printers` (lower case, sorted, each once), and what is wrong with the text."""
    if not text.strip():
        return (), []
    skills, problems = set(), []
    for item in text.split(","):
        skill = item.strip().lower()
        if SKILL.fullmatch(skill):
            skills.add(skill)
        else:
            problems.append(
                f"skill {item.strip()!r} is not a skill: one word of letters and digits, dashes inside "
                "(network, printers, windows-server), separated by commas"
            )
    return tuple(sorted(skills)), problems


def get_user_by_email(session: Session, email: str) -> User | None:
    """The account with this address, whatever its case; None for an address that is no account."""
    address = normal_email(email)
    if address is None:
        return None
    return session.scalars(select(User).where(func.lower(User.email) == address)).one_or_none()


def user_problems(
    session: Session,
    email: str,
    *,
    name: str | None = None,
    role: str | None = None,
    skills: str | None = None,
    language: str | None = None,
) -> list[str]:
    """What stops `add_or_update_user` with these details (a new account needs a name and a role); empty when none."""
    problems: list[str] = []
    address = normal_email(email)
    if address is None:
        problems.append(f"email {email!r} is not a valid address")
    existing = get_user_by_email(session, email) if address else None
    if name is not None and not name.strip():
        problems.append("the name is empty")
    elif name is not None and _unprintable(name):
        problems.append(f"the name contains {_unprintable(name)}: only printable text and plain spaces are allowed")
    elif name is None and existing is None:
        problems.append("a new account needs a name (--name)")
    if role is not None and role not in ROLES:
        problems.append(f"role {role!r} is not one of {', '.join(ROLES)}")
    elif role is None and existing is None:
        problems.append(f"a new account needs a role (--role {'|'.join(ROLES)})")
    if skills is not None:
        problems.extend(parse_skills(skills)[1])
    if language is not None and language not in LANGUAGES:
        problems.append(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    return problems


def password_problems(password: str) -> list[str]:
    """What is wrong with a new password; empty when nothing."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return [f"the password is shorter than {MIN_PASSWORD_LENGTH} characters"]
    if len(password) > MAX_PASSWORD_LENGTH:
        return [f"the password is longer than {MAX_PASSWORD_LENGTH} characters"]
    return []


def add_or_update_user(
    session: Session,
    email: str,
    *,
    name: str | None = None,
    role: str | None = None,
    skills: str | None = None,
    language: str | None = None,
    password: str | None = None,
) -> tuple[User, bool]:
    """Make the account, or change the details given (None keeps one); (the user, True when made).

    Raises UserError, having changed nothing, when any detail is not acceptable. A new
    password ends every session of the account; the same password again changes nothing.
    """
    problems = user_problems(session, email, name=name, role=role, skills=skills, language=language)
    if password is not None:
        problems.extend(password_problems(password))
    if problems:
        raise UserError(problems)
    user = get_user_by_email(session, email)
    created = user is None
    if user is None:
        user = User(email=normal_email(email), skills="", language="it", active=True, session_version=0)
        session.add(user)
    if name is not None:
        user.name = name.strip()
    if role is not None:
        user.role = role
    if skills is not None:
        user.skills = ",".join(parse_skills(skills)[0])
    if language is not None:
        user.language = language
    if password is not None and not (user.password_hash and _matches(user.password_hash, password)):
        user.password_hash = hash_password(password)
        user.session_version = (user.session_version or 0) + 1
    session.flush()
    return user, created


def technicians_with_skill(session: Session, skill: str) -> list[User]:
    """The active technicians who have `skill`, by name."""
    wanted = skill.strip().lower()
    return [user for user in active_technicians(session) if wanted in user.skill_set]


def active_technicians(session: Session) -> Sequence[User]:
    """Every active technician, by name."""
    query = select(User).where(User.role == TECHNICIAN, User.active.is_(True)).order_by(User.name, User.id)
    return session.scalars(query).all()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(user: User | None, password: str) -> bool:
    """True when `user` exists, is active and has this password: always exactly one argon2 verification.

    A hash made with older parameters is replaced by one at the current cost (the caller commits).
    """
    stored = user.password_hash if user is not None else None
    if not _matches(stored or _dummy_hash(), password) or stored is None or user is None:
        return False
    if _hasher.check_needs_rehash(stored):
        user.password_hash = hash_password(password)
    return user.active


def _matches(stored: str, password: str) -> bool:
    """One argon2 verification; a malformed stored hash costs one verification of the dummy instead."""
    try:
        return _hasher.verify(stored, password)
    except InvalidHashError:
        _matches(_dummy_hash(), password)
        return False
    except VerificationError:
        return False


@cache
def _dummy_hash() -> str:
    """A hash of a random password nobody knows, at the current cost: what an unknown account is checked against."""
    return _hasher.hash(secrets.token_urlsafe(32))


def warm_up() -> None:
    """Make the dummy hash now, so that the first unknown account costs no more than any other."""
    _dummy_hash()
