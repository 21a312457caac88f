"""What the line says: complete in every language, read by a voice that speaks it, numbers read slowly."""

from __future__ import annotations

import re
import string

import pytest

import prompts
from callflows.support_line import FLOW
from prompts import Catalogue, Pause, spoken_digits, spoken_phone


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_key_exists_in_every_language():
    keys = {language: set(prompts.catalogue(language).texts) for language in prompts.LANGUAGES}
    everything = set().union(*keys.values())
    for language, present in keys.items():
        assert everything - present == set(), f"missing in {language}"


@pytest.mark.parametrize("language", prompts.LANGUAGES)
def test_no_text_is_empty(language):
    catalogue = prompts.catalogue(language)
    assert catalogue.texts
    empty = [key for key, text in catalogue.texts.items() if not isinstance(text, str) or not text.strip()]
    assert empty == []


def test_the_same_placeholders_are_used_in_every_language():
    italian = prompts.catalogue("it").texts
    for language in prompts.LANGUAGES:
        texts = prompts.catalogue(language).texts
        different = {key for key in italian if key in texts and placeholders(texts[key]) != placeholders(italian[key])}
        assert different == set(), f"{language}: {different}"


@pytest.mark.parametrize("language", prompts.LANGUAGES)
def test_every_catalogue_has_a_voice_and_a_language(language):
    catalogue = prompts.catalogue(language)
    assert catalogue.language == language
    assert catalogue.voice.strip()
    assert re.fullmatch(r"[a-z]{2}-[A-Z]{2}", catalogue.say_language)
    assert catalogue.say_language.startswith(language + "-")


def test_the_two_languages_have_their_own_voices():
    assert prompts.catalogue("it").voice != prompts.catalogue("en").voice
    assert (prompts.catalogue("it").say_language, prompts.catalogue("en").say_language) == ("it-IT", "en-GB")


def test_an_unknown_language_gets_italian():
    assert prompts.catalogue("fr") == prompts.catalogue("it")


def test_every_prompt_the_flow_uses_exists():
    assert FLOW.problems() == []


def test_a_ticket_number_is_read_in_groups_of_three_with_pauses():
    assert spoken_digits("1000017") == ["1, 0, 0.", Pause(1), "0, 0, 1.", Pause(1), "7."]


def test_a_short_number_is_read_without_pauses():
    assert spoken_digits("572") == ["5, 7, 2."]
    assert spoken_digits("") == []


def test_a_phone_number_is_read_digit_by_digit_without_the_plus():
    assert spoken_phone("+393479876543") == "3, 9, 3, 4, 7, 9, 8, 7, 6, 5, 4, 3"


def test_a_key_missing_in_english_falls_back_to_italian():
    english = prompts.catalogue("en")
    empty_english = Catalogue("en", english.voice, english.say_language, {})
    assert empty_english.text("goodbye") == prompts.catalogue("it").text("goodbye")
    assert empty_english.text("greeting_known", company="Studio Verdi") == "Buongiorno, Studio Verdi."


def test_placeholders_are_filled():
    assert prompts.catalogue("en").text("greeting_known", company="Officine Brambilla") == "Hello, Officine Brambilla."
    assert "2 minuti" in prompts.catalogue("it").text("describe_problem", minutes=2)


def test_a_key_missing_everywhere_is_an_error_not_silence():
    with pytest.raises(KeyError):
        prompts.catalogue("en").text("no_such_prompt")
