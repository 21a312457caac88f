"""The line's TwiML, written as text, is the document twilio's own builder writes."""

from __future__ import annotations

from xml.etree import ElementTree

from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from callflows.twiml import Response, Verbs

# Anything a stored name or a prompt may hold, but XML's forbidden characters.
xml_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff")).filter(
    lambda text: all(ch in "\t\n\r" or ord(ch) >= 0x20 for ch in text)
)
url = st.builds(
    lambda path, query: f"https://ivr.example.com/twilio/step/{path}{query}",
    st.sampled_from(["main_menu", "triage", "ticket_number"]),
    st.sampled_from(["", "?lang=it", "?event=silence&lang=en&try=2", '?x="<&>"']),
)


@settings(max_examples=150, deadline=None)
@given(said=st.lists(xml_text, max_size=3), action=url, silence=url, timeout=st.integers(1, 10), menu=st.booleans())
def test_a_menu_is_written_as_twilio_writes_it(said, action, silence, timeout, menu):
    keys = {"num_digits": 1} if menu else {"finish_on_key": "#"}
    ours, nested = Response(), Verbs()
    theirs, gather = VoiceResponse(), Gather(input="dtmf", action=action, method="POST", timeout=timeout, **keys)
    for text in said:
        nested.say(text, voice="Polly.Bianca", language="it-IT")
        gather.say(text, voice="Polly.Bianca", language="it-IT")
    nested.pause(length=1)
    gather.pause(length=1)
    ours.gather(nested, input="dtmf", action=action, method="POST", timeout=timeout, **keys)
    ours.redirect(silence, method="POST")
    theirs.append(gather)
    theirs.redirect(silence, method="POST")
    assert str(ours) == str(theirs)
    ElementTree.fromstring(str(ours))  # and it is well-formed


@settings(max_examples=50, deadline=None)
@given(said=xml_text, action=url, callback=url, number=st.sampled_from(["+390392847438", "", "+39 & <x>"]))
def test_a_recording_a_transfer_and_a_hangup_are_written_as_twilio_writes_them(said, action, callback, number):
    ours, theirs = Response(), VoiceResponse()
    for response in (ours, theirs):
        response.say(said, voice="Polly.Bianca", language="it-IT")
        response.record(
            action=action,
            method="POST",
            max_length=120,
            finish_on_key="#",
            timeout=5,
            play_beep=True,
            trim="trim-silence",
            recording_status_callback=callback,
            recording_status_callback_method="POST",
            recording_status_callback_event="completed absent",
        )
    ours.dial(number, action=action, method="POST", timeout=20)
    dial = Dial(action=action, method="POST", timeout=20)
    dial.number(number)
    theirs.append(dial)
    ours.hangup()
    theirs.hangup()
    assert str(ours) == str(theirs)


def test_attributes_written_once_are_not_mixed_up_between_equal_values():
    # True == 1 to Python (and to a cache of attributes); TwiML writes "true" and "1".
    for first, second in ((True, 1), (1, True)):
        ours, theirs = Response(), VoiceResponse()
        ours.record(play_beep=first)
        ours.record(play_beep=second)
        theirs.record(play_beep=first)
        theirs.record(play_beep=second)
        assert str(ours) == str(theirs)
