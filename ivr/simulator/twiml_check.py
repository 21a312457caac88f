"""What Twilio would reject in a voice TwiML document: unknown verbs and attributes, bad values, bad nesting.

`check_twiml(xml_text, base_url)` returns the problems, each naming where it is, e.g.
`Response/Gather[1]: numDigits="0": must be a whole number of at least 1`. An empty list
means Twilio accepts the document. The verbs the support line uses (Say, Play, Pause,
Gather, Record, Dial with Number, Redirect, Hangup) are checked attribute by attribute;
the other verbs Twilio knows (Reject, Enqueue, Leave, Refer, Connect, Start, Stop, Pay,
Echo) and the other nouns of Dial are recognised, their attributes are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree

# A check takes the attribute's value and the document's URL; it returns what is wrong, or None.
Check = Callable[[str, str | None], str | None]


# -- value checks ---------------------------------------------------------------------------


def url(value: str, base_url: str | None) -> str | None:
    """An absolute http(s) URL, or a relative one resolvable against the document's URL."""
    text = value.strip()
    if not text:
        return "must be a URL, not empty"
    if any(c.isspace() for c in text):
        return "must be a URL, without spaces"
    parts = urlsplit(text)
    if parts.scheme:
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return "must be an http or https URL"
        return None
    if text.startswith("//"):
        return "must name its scheme (http or https)"
    if not base_url or urlsplit(base_url).scheme not in ("http", "https"):
        return "is a relative URL, and there is no document URL to resolve it against"
    resolved = urlsplit(urljoin(base_url, text))
    if resolved.scheme not in ("http", "https") or not resolved.netloc:
        return f"does not resolve to an http or https URL against {base_url}"
    return None


def whole_number(low: int, high: int | None = None) -> Check:
    """A whole number from `low` (to `high`, when given)."""
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def check(value: str, _: str | None) -> str | None:
        if not re.fullmatch(r"\d+", value.strip()):
            return f"must be a whole number {span}"
        number = int(value)
        if number < low or (high is not None and number > high):
            return f"must be a whole number {span}"
        return None

    return check


def one_of(*allowed: str) -> Check:
    def check(value: str, _: str | None) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"

    return check


def tokens_of(*allowed: str) -> Check:
    """One or more of `allowed`, separated by spaces (or commas)."""

    def check(value: str, _: str | None) -> str | None:
        given = [t for t in re.split(r"[\s,]+", value.strip()) if t]
        unknown = [t for t in given if t not in allowed]
        if not given or unknown:
            return f"must be one or more of {', '.join(allowed)} separated by spaces"
        return None

    return check


def keys(allowed: str, *, single: bool) -> Check:
    """Keys of a phone keypad: exactly one (or none) when `single`, else any non-empty set."""

    def check(value: str, _: str | None) -> str | None:
        if single:
            if value == "" or (len(value) == 1 and value in allowed):
                return None
            return f"must be one key of {allowed}, or empty"
        if value and all(c in allowed for c in value):
            return None
        return f"must be keys among {allowed}"

    return check


def language(value: str, _: str | None) -> str | None:
    if re.fullmatch(r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*", value):
        return None
    return "must be a language tag like it-IT or en-GB"


def any_text(value: str, _: str | None) -> str | None:
    return None


def non_empty(value: str, _: str | None) -> str | None:
    return None if value.strip() else "must not be empty"


def speech_timeout(value: str, base_url: str | None) -> str | None:
    if value == "auto":
        return None
    return None if whole_number(1)(value, base_url) is None else "must be a whole number of at least 1, or auto"


def play_digits(value: str, _: str | None) -> str | None:
    return None if value and all(c in "0123456789*#wW" for c in value) else "must be keys among 0-9 * # and w"


METHOD = one_of("GET", "POST")
BOOLEAN = one_of("true", "false")
ALL_KEYS = "0123456789*#"
RECORDING_EVENTS = tokens_of("in-progress", "completed", "absent")


# -- the verbs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verb:
    """What an element may hold. `attributes` None: recognised, attributes not checked."""

    attributes: Mapping[str, Check] | None
    children: frozenset[str] = frozenset()
    text: str = "none"  # none | optional | required | url
    any_children: bool = False
    required_content: bool = False  # text or at least one child


SSML = frozenset({"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w"})
DIAL_NOUNS = frozenset({"Number", "Client", "Sip", "Conference", "Queue", "Sim", "Application", "WhatsApp"})
LOOSE = Verb(attributes=None, text="optional", any_children=True)

VERBS: dict[str, Verb] = {
    "Say": Verb(
        {"voice": non_empty, "language": language, "loop": whole_number(0)},
        children=SSML,
        text="optional",
        required_content=True,
    ),
    "Play": Verb({"loop": whole_number(0), "digits": play_digits}, text="url"),
    "Pause": Verb({"length": whole_number(1)}),
    "Gather": Verb(
        {
            "action": url,
            "method": METHOD,
            "timeout": whole_number(1),
            "finishOnKey": keys(ALL_KEYS, single=True),
            "numDigits": whole_number(1),
            "input": tokens_of("dtmf", "speech"),
            "language": language,
            "hints": any_text,
            "speechTimeout": speech_timeout,
            "speechModel": non_empty,
            "profanityFilter": BOOLEAN,
            "actionOnEmptyResult": BOOLEAN,
            "partialResultCallback": url,
            "partialResultCallbackMethod": METHOD,
            "enhanced": BOOLEAN,
            "bargeIn": BOOLEAN,
            "debug": BOOLEAN,
            "maxSpeechTime": whole_number(1),
        },
        children=frozenset({"Say", "Play", "Pause"}),
    ),
    "Record": Verb(
        {
            "action": url,
            "method": METHOD,
            "timeout": whole_number(1),
            "finishOnKey": keys(ALL_KEYS, single=False),
            "maxLength": whole_number(2, 14400),
            "playBeep": BOOLEAN,
            "trim": one_of("trim-silence", "do-not-trim"),
            "recordingStatusCallback": url,
            "recordingStatusCallbackMethod": METHOD,
            "recordingStatusCallbackEvent": RECORDING_EVENTS,
            "transcribe": BOOLEAN,
            "transcribeCallback": url,
            "storageUrl": url,
            "storageUrlMethod": METHOD,
        }
    ),
    "Dial": Verb(
        {
            "action": url,
            "method": METHOD,
            "timeout": whole_number(5, 600),
            "hangupOnStar": BOOLEAN,
            "timeLimit": whole_number(1),
            "callerId": non_empty,
            "record": one_of(
                "do-not-record",
                "record-from-answer",
                "record-from-ringing",
                "record-from-answer-dual",
                "record-from-ringing-dual",
                "true",
                "false",
            ),
            "trim": one_of("trim-silence", "do-not-trim"),
            "recordingStatusCallback": url,
            "recordingStatusCallbackMethod": METHOD,
            "recordingStatusCallbackEvent": RECORDING_EVENTS,
            "recordingTrack": one_of("both", "inbound", "outbound"),
            "answerOnBridge": BOOLEAN,
            "ringTone": non_empty,
            "sequential": BOOLEAN,
            "referUrl": url,
            "referMethod": METHOD,
            "events": any_text,
        },
        children=DIAL_NOUNS,
        text="optional",
        required_content=True,
    ),
    "Redirect": Verb({"method": METHOD}, text="url"),
    "Hangup": Verb({}),
    "Reject": Verb({"reason": one_of("rejected", "busy")}),
    "Leave": Verb({}),
    **{name: LOOSE for name in ("Enqueue", "Refer", "Connect", "Start", "Stop", "Pay", "Echo")},
}

NOUNS: dict[str, Verb] = {
    "Number": Verb(
        {
            "sendDigits": play_digits,
            "url": url,
            "method": METHOD,
            "statusCallback": url,
            "statusCallbackEvent": tokens_of("initiated", "ringing", "answered", "completed"),
            "statusCallbackMethod": METHOD,
            "byoc": non_empty,
            "machineDetection": one_of("Enable", "DetectMessageEnd"),
            "machineDetectionTimeout": whole_number(3, 60),
            "machineDetectionSpeechThreshold": whole_number(1000, 6000),
            "machineDetectionSpeechEndThreshold": whole_number(500, 5000),
            "machineDetectionSilenceTimeout": whole_number(2000, 10000),
            "amdStatusCallback": url,
            "amdStatusCallbackMethod": METHOD,
        },
        text="required",
    ),
    **{name: LOOSE for name in DIAL_NOUNS - {"Number"}},
}


# -- the check ------------------------------------------------------------------------------


@dataclass
class _Walk:
    base_url: str | None
    problems: list[str] = field(default_factory=list)

    def element(self, element: ElementTree.Element, rule: Verb, path: str) -> None:
        self.attributes(element, rule, path)
        self.content(element, rule, path)
        counts: dict[str, int] = {}
        for child in element:
            counts[child.tag] = counts.get(child.tag, 0) + 1
            child_path = f"{path}/{child.tag}[{counts[child.tag]}]"
            if rule.any_children:
                continue
            if child.tag not in rule.children:
                self.problems.append(f"{child_path}: <{child.tag}> is not allowed inside <{element.tag}>")
                continue
            child_rule = (NOUNS if element.tag == "Dial" else VERBS).get(child.tag)
            if child_rule is not None:  # SSML inside Say is taken as it is
                self.element(child, child_rule, child_path)

    def attributes(self, element: ElementTree.Element, rule: Verb, path: str) -> None:
        if rule.attributes is None:
            return
        for name, value in element.attrib.items():
            check = rule.attributes.get(name)
            if check is None:
                self.problems.append(f'{path}: unknown attribute {name}="{value}" on <{element.tag}>')
                continue
            reason = check(value, self.base_url)
            if reason:
                self.problems.append(f'{path}: {name}="{value}": {reason}')

    def content(self, element: ElementTree.Element, rule: Verb, path: str) -> None:
        text = (element.text or "").strip()
        if rule.text == "none" and text:
            self.problems.append(f"{path}: <{element.tag}> holds text ({text[:40]!r}); it takes none")
        elif rule.text == "url":
            if text:
                reason = url(text, self.base_url)
                if reason:
                    self.problems.append(f"{path}: URL {text!r} {reason}")
            elif not (element.tag == "Play" and element.get("digits")):
                self.problems.append(f"{path}: <{element.tag}> needs a URL as its text")
        elif rule.text == "required" and not text:
            self.problems.append(f"{path}: <{element.tag}> needs text")
        if rule.required_content and not text and len(element) == 0:
            self.problems.append(f"{path}: <{element.tag}> is empty")


def check_twiml(xml_text: str, base_url: str | None = None) -> list[str]:
    """The problems Twilio would have with this voice TwiML document; `base_url` is the document's URL."""
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as error:
        return [f"not well-formed XML: {error}"]
    if root.tag != "Response":
        return [f"the root element is <{root.tag}>; TwiML needs <Response>"]
    walk = _Walk(base_url)
    walk.element(root, Verb({}, children=frozenset(VERBS)), "Response")
    return walk.problems
