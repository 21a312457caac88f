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

from ivr.simulator.twilio_requests import recording_url

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


def spoken_wav(words: str, language: str, *, band_pass: bool = False) -> bytes:
    """`words` spoken by espeak-ng, as 8 kHz mono like a phone recording when sox is there.

    `band_pass` also keeps only a phone line's 300-3400 Hz, the sound the worker's tests transcribe.
    """
    with tempfile.TemporaryDirectory(prefix="ivr-call-") as tmp:
        raw, phone = Path(tmp) / "raw.wav", Path(tmp) / "phone.wav"
        subprocess.run(["espeak-ng", "-v", espeak_voice(language), "-s", "140", "-w", str(raw), words], check=True)
        if shutil.which("sox"):
            effects = ["sinc", "300-3400"] if band_pass else []
            subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(phone), *effects], check=True)
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

    Basic auth with the account's credentials: wrong ones are always refused, none only with
    `require_auth` (a Twilio account that enforces media auth). `fetches` counts the downloads of
    each recording, `hits` lists every path asked for. For tests: `not_ready` answers that many
    404s first, as Twilio does just after a call; `delay_first` holds the first request that many
    seconds; `hold()` makes the next request wait until the test releases it.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        require_auth: bool = False,
        delay_first: float = 0,
    ) -> None:
        self.account_sid = account_sid
        self.require_auth = require_auth
        self.files: dict[str, bytes | Path] = {}  # the audio of each RecordingSid, or the WAV file holding it
        self.fetches: dict[str, int] = {}
        self.hits: list[str] = []
        self.delay_first = delay_first
        self.first_hit = threading.Event()
        self.not_ready = 0
        self.entered = threading.Event()  # set when a held request has arrived
        self.gate: threading.Event | None = None
        self._lock = threading.Condition()
        expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.httpd = ThreadingHTTPServer((host, port), _handler(self, expected))
        self.host = f"{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.1,), name="recording-server", daemon=True).start()

    def url(self, sid: str) -> str:
        """The RecordingUrl of recording `sid` on this server (without extension, as Twilio gives it)."""
        return recording_url(self.account_sid, sid, f"http://{self.host}")

    def publish(self, sid: str, audio: bytes | Path) -> str:
        """Serve `audio` (WAV bytes or file) as recording `sid`; its RecordingUrl."""
        self.files[sid] = audio
        return self.url(sid)

    def hold(self) -> threading.Event:
        """The next request waits, once it has arrived (`entered`), until the returned event is set."""
        self.entered.clear()
        self.gate = threading.Event()
        return self.gate

    def arrived(self, path: str) -> tuple[bool, threading.Event | None]:
        """Note a request for `path`: whether the recording is ready yet, and the gate it must wait at."""
        with self._lock:
            self.hits.append(path)
            first = len(self.hits) == 1
            ready = self.not_ready <= 0
            if not ready:
                self.not_ready -= 1
            gate, self.gate = (self.gate, None) if ready else (None, self.gate)
        self.first_hit.set()
        if first and self.delay_first:
            time.sleep(self.delay_first)
        return ready, gate

    def served(self, sid: str) -> None:
        with self._lock:
            self.fetches[sid] = self.fetches.get(sid, 0) + 1
            self._lock.notify_all()

    def wait_until_fetched(self, sids: Iterable[str], timeout: float) -> bool:
        """Wait until every one of `sids` was downloaded at least once, at most `timeout` seconds."""
        wanted = set(sids)
        deadline = time.monotonic() + timeout
        with self._lock:
            while not wanted <= set(self.fetches):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: RecordingServer, expected_auth: str) -> type[BaseHTTPRequestHandler]:
    prefix = recording_url(server.account_sid, "", base="")  # the path of every recording, up to its SID

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self._answer(with_body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(with_body=False)

        def _answer(self, with_body: bool) -> None:
            ready, gate = server.arrived(self.path)
            if not ready:
                self._status(404)
                return
            if gate is not None:
                server.entered.set()
                gate.wait(60)
            given = self.headers.get("Authorization")
            if given is None and server.require_auth:
                self._status(401)
                return
            if given is not None and not hmac.compare_digest(given.encode(), expected_auth.encode()):
                self._status(401)
                return
            path = self.path.split("?", 1)[0]
            sid = path.removeprefix(prefix).removesuffix(".wav")
            audio = server.files.get(sid) if path.startswith(prefix) else None
            if audio is None:
                self._status(404)
                return
            body = audio.read_bytes() if isinstance(audio, Path) else audio
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
