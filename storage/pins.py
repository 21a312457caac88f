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


class PinError(ValueError):
    """The PIN or the customer is not acceptable."""


def hash_pin(pin: str) -> str:
    if not (pin.isascii() and pin.isdigit() and len(pin) in PIN_LENGTHS):
        raise PinError("a PIN is 4 to 8 digits")
    salt = os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def pin_matches(pin: str, stored: str | None) -> bool:
    """True when `pin` is the one hashed in `stored`."""
    if not stored or not pin.isascii() or not pin.isdigit():
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        assert scheme == "scrypt"
        computed = hashlib.scrypt(pin.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, AssertionError):
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


def set_customer_pin(session: Session, customer_code: str, pin: str | None) -> None:
    """Set (or with None, remove) the phone PIN of a customer."""
    customer = get_customer_by_code(session, customer_code)
    if customer is None:
        raise PinError(f"no customer with code {customer_code}")
    customer.pin_hash = hash_pin(pin) if pin is not None else None
