"""Ticket numbers carry a Damm check digit: a caller's typing slip is caught without a database lookup."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.ticket_numbers import FIRST_SERIAL, check_digit, is_valid, ticket_number

DIGITS = "0123456789"


def sample_numbers(count: int = 200) -> list[str]:
    """The first tickets, plus some from much later in the line's life."""
    rng = random.Random(20240601)
    first = [ticket_number(FIRST_SERIAL + i) for i in range(count // 2)]
    later = [ticket_number(rng.randrange(FIRST_SERIAL, 10**12)) for _ in range(count - len(first))]
    return first + later


def substitutions(number: str):  # type: ignore[no-untyped-def]
    for i, original in enumerate(number):
        for digit in DIGITS:
            if digit != original:
                yield number[:i] + digit + number[i + 1 :]


def adjacent_transpositions(number: str):  # type: ignore[no-untyped-def]
    for i in range(len(number) - 1):
        if number[i] != number[i + 1]:
            yield number[:i] + number[i + 1] + number[i] + number[i + 2 :]


def test_the_first_ticket_number_is_seven_digits():
    first = ticket_number(FIRST_SERIAL)
    assert first.startswith(str(FIRST_SERIAL)) and len(first) == 7
    assert is_valid(first)


def test_known_damm_check_digits():
    # The textbook example: 572 has check digit 4.
    assert check_digit("572") == "4"
    assert is_valid("5724")
    assert not is_valid("5723")


def test_every_generated_number_is_valid_and_digits_only():
    numbers = sample_numbers()
    assert len(set(numbers)) == len(numbers)
    for number in numbers:
        assert number.isascii() and number.isdigit()
        assert is_valid(number), number


def test_every_single_digit_slip_is_caught():
    for number in sample_numbers():
        for typo in substitutions(number):
            assert not is_valid(typo), (number, typo)


def test_every_swap_of_two_neighbouring_digits_is_caught():
    for number in sample_numbers():
        swaps = list(adjacent_transpositions(number))
        assert swaps or len(set(number)) == 1
        for swap in swaps:
            assert not is_valid(swap), (number, swap)


VALID = ticket_number(FIRST_SERIAL)
FULLWIDTH = str.maketrans(DIGITS, "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans(DIGITS, "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "abc",
        VALID + " ",
        " " + VALID,
        VALID + "\n",
        "+" + VALID,
        VALID[:-1] + "-" + VALID[-1],
        VALID.replace("0", "O"),
        VALID.translate(FULLWIDTH),
        VALID.translate(ARABIC_INDIC),
        "1²",
        "²",
    ],
)
def test_anything_but_a_string_of_ascii_digits_is_invalid(text):
    assert is_valid(VALID)
    assert is_valid(text) is False


@given(st.integers(min_value=1, max_value=10**15))
def test_property_numbers_of_any_serial_are_valid(serial):
    number = ticket_number(serial)
    assert number.isascii() and number.isdigit()
    assert number[:-1] == str(serial)
    assert is_valid(number)


@given(st.integers(min_value=FIRST_SERIAL, max_value=10**15), st.data())
def test_property_a_single_substitution_is_always_caught(serial, data):
    number = ticket_number(serial)
    position = data.draw(st.integers(min_value=0, max_value=len(number) - 1))
    digit = data.draw(st.sampled_from([d for d in DIGITS if d != number[position]]))
    assert not is_valid(number[:position] + digit + number[position + 1 :])


@given(st.integers(min_value=FIRST_SERIAL, max_value=10**15), st.data())
def test_property_an_adjacent_transposition_is_always_caught(serial, data):
    number = ticket_number(serial)
    positions = [i for i in range(len(number) - 1) if number[i] != number[i + 1]]
    if not positions:
        return
    i = data.draw(st.sampled_from(positions))
    assert not is_valid(number[:i] + number[i + 1] + number[i] + number[i + 2 :])


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=12).filter(lambda s: not s.isdigit()))
def test_property_ascii_text_that_is_not_all_digits_is_invalid(text):
    assert is_valid(text) is False


@given(st.text(max_size=12))
def test_property_any_text_gives_an_answer_and_valid_means_ascii_digits(text):
    valid = is_valid(text)  # never raises, whatever was typed or sent
    assert isinstance(valid, bool)
    if valid:
        assert text.isascii() and text.isdigit() and check_digit(text) == "0"
