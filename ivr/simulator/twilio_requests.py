"""The requests Twilio makes about a call: the parameters it sends at each step, and their signature.

One builder for the simulated call, the tests' caller and the benchmark. A `TwilioCall` holds
the parameters Twilio sends about a call on every webhook; the functions below give the fields
each verb or callback adds (keys pressed, a message left, a Dial's end, a recording's status,
the call's end); `signed_request` signs a request as Twilio does, with twilio's own
`RequestValidator.compute_signature`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
TWILIO_API = "https://api.twilio.com"
LINE_NUMBER = "+390392847438"  # the help desk's number, the `To` of every call


def new_sid(prefix: str) -> str:
    """A fresh Twilio SID: `CA...` for a call, `RE...` for a recording."""
    return prefix + uuid.uuid4().hex


def recording_url(account_sid: str, sid: str, base: str = TWILIO_API) -> str:
    """The RecordingUrl of recording `sid` (without extension, as Twilio gives it) on the host `base`."""
    return f"{base}/{API_VERSION}/Accounts/{account_sid}/Recordings/{sid}"


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The X-Twilio-Signature of a form-encoded request for `url` carrying `params`."""
    return RequestValidator(auth_token).compute_signature(url, dict(params))


@dataclass(frozen=True)
class TwilioRequest:
    """One signed request: the URL Twilio requests (and signs), its form, its headers."""

    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]

    @property
    def path(self) -> str:
        """The path and query of `url`: what a test client, or a proxy in front of the service, is given."""
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")


def signed_request(url: str, params: Mapping[str, str], auth_token: str, method: str = "POST") -> TwilioRequest:
    """A request as Twilio makes it: POST form-encoded, or GET with the parameters in the signed query."""
    if method == "GET":
        url = url + ("&" if urlsplit(url).query else "?") + urlencode(params)
        params = {}
    return TwilioRequest(method, url, dict(params), {"X-Twilio-Signature": signature(auth_token, url, params)})


@dataclass
class TwilioCall:
    """An inbound call as Twilio tells the webhooks about it; `status` is the CallStatus it sends."""

    account_sid: str
    auth_token: str = field(repr=False)
    from_: str
    to: str = LINE_NUMBER
    call_sid: str = field(default_factory=lambda: new_sid("CA"))
    status: str = "ringing"

    @property
    def params(self) -> dict[str, str]:
        """What Twilio posts about the call to every webhook of its TwiML."""
        return {
            "CallSid": self.call_sid,
            "AccountSid": self.account_sid,
            "From": self.from_,
            "To": self.to,
            "Caller": self.from_,
            "Called": self.to,
            "Direction": "inbound",
            "CallStatus": self.status,
            "ApiVersion": API_VERSION,
        }

    def request(
        self, url: str, fields: Mapping[str, str] | None = None, method: str = "POST", *, about_call: bool = True
    ) -> TwilioRequest:
        """A signed request for `url`: `fields` on the call's parameters, or (not `about_call`) on its SIDs alone."""
        ids = self.params if about_call else {"AccountSid": self.account_sid, "CallSid": self.call_sid}
        return signed_request(url, {**ids, **(fields or {})}, self.auth_token, method)


def keys_pressed(digits: str, finished_on: str = "") -> dict[str, str]:
    """A Gather's action: the keys pressed, and the finishOnKey that ended them (none at numDigits)."""
    return {"Digits": digits, "FinishedOnKey": finished_on, "msg": "Gather End"}


def words_spoken(words: str) -> dict[str, str]:
    """A Gather's action when it takes speech: what the caller said."""
    return {"SpeechResult": words, "Confidence": "0.92", "msg": "Gather End"}


def recording(sid: str, duration: int | str, url: str | None = None) -> dict[str, str]:
    """A recording's own fields, as both the Record action and the recording status callback carry them."""
    fields = {"RecordingSid": sid, "RecordingDuration": str(duration)}
    if url is not None:
        fields["RecordingUrl"] = url
    return fields


def message_left(recorded: Mapping[str, str], finished_on: str = "#", *, hung_up: bool = False) -> dict[str, str]:
    """A Record's action: the recording, ended by `finished_on` or by the caller hanging up."""
    if hung_up:
        return {**recorded, "Digits": "hangup", "CallStatus": "completed"}
    return {**recorded, "Digits": finished_on} if finished_on else dict(recorded)


def recording_status(recorded: Mapping[str, str], status: str = "completed") -> dict[str, str]:
    """The recording status callback: the recording, and whether it is `completed`, `in-progress` or `absent`."""
    return {
        **recorded,
        "RecordingStatus": status,
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
        "RecordingStartTime": formatdate(usegmt=True),
        "ErrorCode": "0",
    }


def dial_ended(status: str = "no-answer", duration: int = 60) -> dict[str, str]:
    """A Dial's action once the technician's leg ends: `completed` after `duration` seconds answered, or not."""
    fields = {"DialCallStatus": status, "DialCallSid": new_sid("CA")}
    if status == "completed":
        fields.update(DialCallDuration=str(duration), DialBridged="true")
    return fields


def call_ended(duration: int, status: str = "completed") -> dict[str, str]:
    """The call's status callback when it ends, after `duration` seconds."""
    return {
        "CallStatus": status,
        "CallDuration": str(duration),
        "Timestamp": formatdate(usegmt=True),
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "0",
    }
