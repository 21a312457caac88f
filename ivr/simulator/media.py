"""The sound of the simulated call: the caller's message as WAV audio, served over loopback the way
Twilio serves recordings, and the line's words spoken aloud with espeak-ng."""

from __future__ import annotations

import base64
import hmac
import io
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DEFAULT_MESSAGES = {
    "it": "Buongiorno, la stampante dell'ufficio non stampa più e la posta elettronica non funziona.",
    "en": "Hello, the office printer does not print any more, and the email is not working.",
}


@dataclass(frozen=True)
class Audio:
    """A message as the caller left it: WAV bytes, their length, and how the transcript shows it."""

    wav: bytes
    seconds: float
    shown_as: str


def espeak_voice(language_tag: str) -> str:
    """The espeak-ng voice for a BCP-47 tag: it-IT -> it, en-GB -> en-gb, en-US -> en-us."""
    tag = language_tag.lower()
    return tag if tag in ("en-gb", "en-us") else tag.split("-")[0]


def has_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def spoken_wav(words: str, language: str) -> bytes:
    """`words` spoken by espeak-ng, as 8 kHz mono like a phone recording when sox is there."""
    with tempfile.TemporaryDirectory(prefix="ivr-call-") as tmp:
        raw, phone = Path(tmp) / "raw.wav", Path(tmp) / "phone.wav"
        subprocess.run(["espeak-ng", "-v", espeak_voice(language), "-s", "140", "-w", str(raw), words], check=True)
        if shutil.which("sox"):
            subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(phone)], check=True)
            return phone.read_bytes()
        return raw.read_bytes()


def silent_wav(seconds: float) -> bytes:
    """Silence, for a message when espeak-ng is not installed."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * int(8000 * seconds))
    return out.getvalue()


def wav_seconds(data: bytes) -> float:
    """The length of WAV audio; ValueError when it is not a WAV file."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            return wav.getnframes() / float(wav.getframerate())
    except (wave.Error, EOFError) as error:
        raise ValueError(f"not a WAV file Twilio could have recorded ({error})") from None


@dataclass(frozen=True)
class CallerVoice:
    """How the caller's messages sound: the `recording` file, or words spoken by espeak-ng in `language`."""

    language: str = "it"
    recording: Path | None = None
    words: str | None = None  # what the caller says when the answer names no words

    def message(self, words: str | None = None) -> Audio:
        if words is None and self.recording is not None:
            data = self.recording.read_bytes()
            return Audio(data, wav_seconds(data), f"({self.recording.name})")
        text = words or self.words or DEFAULT_MESSAGES.get(self.language, DEFAULT_MESSAGES["it"])
        if has_espeak():
            data = spoken_wav(text, self.language)
            return Audio(data, wav_seconds(data), f'"{text}"')
        seconds = max(2.0, len(text.split()) * 0.4)
        return Audio(silent_wav(seconds), seconds, f'"{text}" (silence: espeak-ng is not installed)')


def speak_aloud(text: str, language_tag: str) -> None:
    """Say `text` through the speakers with espeak-ng, and wait until it is said; quiet without espeak-ng."""
    if has_espeak():
        subprocess.run(["espeak-ng", "-v", espeak_voice(language_tag), text], check=False, capture_output=True)


class RecordingServer:
    """Twilio's recording media on loopback: GET /2010-04-01/Accounts/<AC>/Recordings/<RE>[.wav].

    Basic auth is optional, as on a Twilio account without enforced media auth; wrong
    credentials are refused. `fetches` counts the downloads of each recording.
    """

    def __init__(self, account_sid: str, auth_token: str, port: int = 0, host: str = "127.0.0.1") -> None:
        self.account_sid = account_sid
        self.files: dict[str, bytes] = {}
        self.fetches: dict[str, int] = {}
        self._fetched = threading.Condition()
        expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.httpd = ThreadingHTTPServer((host, port), _handler(self, expected))
        self.host = f"{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.1,), name="recording-server", daemon=True).start()

    def publish(self, sid: str, wav: bytes) -> str:
        """Serve `wav` as recording `sid`; its RecordingUrl (without extension, as Twilio gives it)."""
        self.files[sid] = wav
        return f"http://{self.host}/2010-04-01/Accounts/{self.account_sid}/Recordings/{sid}"

    def served(self, sid: str) -> None:
        with self._fetched:
            self.fetches[sid] = self.fetches.get(sid, 0) + 1
            self._fetched.notify_all()

    def wait_until_fetched(self, sids: Iterable[str], timeout: float) -> bool:
        """Wait until every one of `sids` was downloaded at least once, at most `timeout` seconds."""
        wanted = set(sids)
        deadline = time.monotonic() + timeout
        with self._fetched:
            while not wanted <= set(self.fetches):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._fetched.wait(left)
        return True

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: RecordingServer, expected_auth: str) -> type[BaseHTTPRequestHandler]:
    prefix = f"/2010-04-01/Accounts/{server.account_sid}/Recordings/"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self._answer(with_body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(with_body=False)

        def _answer(self, with_body: bool) -> None:
            given = self.headers.get("Authorization")
            if given is not None and not hmac.compare_digest(given.encode(), expected_auth.encode()):
                self._status(401)
                return
            path = self.path.split("?", 1)[0]
            sid = path.removeprefix(prefix).removesuffix(".wav")
            if not path.startswith(prefix) or sid not in server.files:
                self._status(404)
                return
            body = server.files[sid]
            self.send_response(200)
            self.send_header("Content-Type", "audio/x-wav")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)
                server.served(sid)

        def _status(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler
