"""Ticket numbers: digits only, ending with a Damm check digit.

The Damm algorithm detects every single-digit error and every adjacent
transposition, so a mistyped number is recognised without a database lookup.
"""

from __future__ import annotations

_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

# Serial numbers start here so every ticket number has the same length (7 digits
# with the check digit) for the first nine hundred thousand tickets.
FIRST_SERIAL = 100_001


def check_digit(digits: str) -> str:
    """The Damm check digit of a string of digits."""
    interim = 0
    for char in digits:
        interim = _DAMM[interim][int(char)]
    return str(interim)


def ticket_number(serial: int) -> str:
    """The spoken/typed number of the ticket with this serial."""
    body = str(serial)
    return body + check_digit(body)


def is_valid(number: str) -> bool:
    """True when `number` is all digits, long enough, and its check digit matches."""
    return number.isascii() and number.isdigit() and len(number) >= 2 and check_digit(number) == "0"
