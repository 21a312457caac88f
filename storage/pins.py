"""Customers' phone PINs: digits a caller types to hear about the customer's tickets, stored hashed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from sqlalchemy.orm import Session

from storage.contacts import get_customer_by_code

PIN_LENGTHS = range(4, 9)
_N, _R, _P = 2**14, 8, 1  # scrypt cost: a few milliseconds per check, far too slow to guess offline at scale

# Checked against when there is no PIN to check (no ticket, no PIN set, a malformed hash): the
# same scrypt at the same cost, so a wrong PIN takes as long whether or not the ticket exists.
# Its digest is no scrypt output, so nothing ever matches it.
_DUMMY_SALT, _DUMMY_DIGEST = b"\0" * 16, b"\0" * 64


class PinError(ValueError):
    """The PIN or the customer is not acceptable."""


def hash_pin(pin: str) -> str:
    if not _is_pin(pin):
        raise PinError("a PIN is 4 to 8 digits")
    salt = os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def pin_matches(pin: str, stored: str | None) -> bool:
    """True when `pin` is the one hashed in `stored`.

    Exactly one scrypt at the real cost whatever `stored` is (None, malformed) and whatever
    was typed: the time a refusal takes tells nothing about the ticket or its customer.
    """
    salt, digest, (n, r, p) = _parse(stored) or (_DUMMY_SALT, _DUMMY_DIGEST, (_N, _R, _P))
    candidate = pin.encode() if _is_pin(pin) else b""
    computed = hashlib.scrypt(candidate, salt=salt, n=n, r=r, p=p)
    return hmac.compare_digest(computed, digest) and candidate != b"" and digest != _DUMMY_DIGEST


def _is_pin(pin: str) -> bool:
    return pin.isascii() and pin.isdigit() and len(pin) in PIN_LENGTHS


def _parse(stored: str | None) -> tuple[bytes, bytes, tuple[int, int, int]] | None:
    """(salt, digest, cost) of a hash made by `hash_pin`; None when there is none, or it is malformed.

    A hash made at another cost is refused (its PIN must be set again): every check costs the same.
    """
    try:
        scheme, n, r, p, salt, digest = (stored or "").split("$")
        if scheme != "scrypt" or (int(n), int(r), int(p)) != (_N, _R, _P):
            return None
        return base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True), (_N, _R, _P)
    except ValueError:
        return None


def set_customer_pin(session: Session, customer_code: str, pin: str | None) -> None:
    """Set (or with None, remove) the phone PIN of a customer."""
    customer = get_customer_by_code(session, customer_code)
    if customer is None:
        raise PinError(f"no customer with code {customer_code}")
    customer.pin_hash = hash_pin(pin) if pin is not None else None
