"""How fast the webhooks answer: whole calls played against the app, latency per request.

    .venv/bin/python -m benchmarks.webhook_latency [--calls 200] [--database-url URL]

Runs in-process (no network between "Twilio" and the app), so it measures our own work
per webhook: signature check, database, TwiML. The calls come from the demo directory's
Giulia Brambilla (examples/contacts.csv), with the requests the simulator builds. Prints
percentiles per endpoint kind.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Mapping
from xml.etree import ElementTree

from flask.testing import FlaskClient

from benchmarks import ACCOUNT_SID, AUTH_TOKEN, BASE_URL, DIRECTORY, bench_app, database_of_its_own
from ivr.simulator import twilio_requests as twilio
from ivr.simulator.commands import DEMO_CALLER
from storage.contacts import import_contacts
from storage.db import upgrade


class TimedCall:
    """One call played into the app's test client, each webhook's time kept under its kind."""

    def __init__(self, client: FlaskClient, timings: dict[str, list[float]]) -> None:
        self.client, self.timings = client, timings
        self.twilio_call = twilio.TwilioCall(ACCOUNT_SID, AUTH_TOKEN, DEMO_CALLER, status="in-progress")
        self.last: ElementTree.Element | None = None

    def send(self, kind: str, url: str, fields: Mapping[str, str] | None = None) -> None:
        """Sign and post a webhook, and read its TwiML (callbacks answer none)."""
        start = time.perf_counter()
        request = self.twilio_call.request(url, fields)
        response = self.client.post(request.path, data=request.params, headers=request.headers)
        assert response.status_code in (200, 204), f"{request.path} answered {response.status_code}"
        if response.status_code == 200:
            self.last = ElementTree.fromstring(response.data)
        self.timings[kind].append(time.perf_counter() - start)

    def next_url(self, tag: str) -> str:
        """Where the last TwiML's `tag` (Gather, Record: its action; Redirect: its URL) leads."""
        verb = None if self.last is None else next(self.last.iter(tag), None)
        assert verb is not None, f"no {tag} in the last TwiML"
        return verb.get("action") or (verb.text or "").strip()

    def play(self) -> None:
        """Silence at the welcome, 1 a new request, 1 everything is stopped, a message, 1 to confirm it."""
        self.send("voice (answer)", f"{BASE_URL}/twilio/voice", {"CallStatus": "ringing"})
        self.send("menu step", self.next_url("Redirect"))
        self.send("menu step", self.next_url("Gather"), twilio.keys_pressed("1"))
        self.send("menu step", self.next_url("Gather"), twilio.keys_pressed("1"))
        sid = twilio.new_sid("RE")
        message = twilio.recording(sid, 7, twilio.recording_url(ACCOUNT_SID, sid))
        self.send("record action", self.next_url("Record"), twilio.message_left(message))
        self.send("open ticket", self.next_url("Gather"), twilio.keys_pressed("1"))
        self.send("callback", f"{BASE_URL}/twilio/recording", twilio.recording_status(message))
        self.send("callback", f"{BASE_URL}/twilio/status", twilio.call_ended(42))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--database-url", default=None, help="default: a fresh SQLite file; on PostgreSQL, a private schema"
    )
    args = parser.parse_args()
    with database_of_its_own(args.database_url, "latency") as url:
        play_calls(url, args.calls)


def play_calls(url: str, calls: int) -> None:
    """Play `calls` whole calls against the app on `url` and print each webhook kind's latency."""
    upgrade(url)
    app = bench_app(url)
    with app.config["SESSIONMAKER"]() as session, session.begin():
        import_contacts(session, DIRECTORY.read_text(encoding="utf-8"))
    client = app.test_client()
    timings: dict[str, list[float]] = defaultdict(list)
    for _ in range(calls):
        TimedCall(client, timings).play()
    app.config["ENGINE"].dispose()

    print(f"{calls} calls on {url.split(':')[0]}")
    print(f"{'webhook':<16} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, values in timings.items():
        ms = sorted(v * 1000 for v in values)
        q = statistics.quantiles(ms, n=100, method="inclusive")  # within the data, however few
        print(f"{kind:<16} {len(ms):>6} {q[49]:>8.1f} {q[94]:>8.1f} {q[98]:>8.1f} {ms[-1]:>8.1f}")


if __name__ == "__main__":
    main()
