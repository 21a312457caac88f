"""How fast the webhooks answer: whole calls played against the app, latency per request.

    .venv/bin/python benchmarks/webhook_latency.py [--calls 200] [--database-url URL]

Runs in-process (no network between "Twilio" and the app), so it measures our own work
per webhook: signature check, database, TwiML. Prints percentiles per endpoint kind.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr import create_app  # noqa: E402
from ivr.settings import Secret, Settings  # noqa: E402
from storage.contacts import import_contacts  # noqa: E402
from storage.db import upgrade  # noqa: E402
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, DIRECTORY_CSV, GIULIA, Caller  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    upgrade(url)
    settings = Settings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=Secret(AUTH_TOKEN),
        api_token=Secret("bench"),
        database_url=url,
        public_base_url="https://ivr.example.com",
        queue_name=f"bench-{uuid.uuid4().hex[:6]}",
    )
    app = create_app(settings)
    with app.config["SESSIONMAKER"]() as session, session.begin():
        import_contacts(session, DIRECTORY_CSV)
    client = app.test_client()
    timings: dict[str, list[float]] = defaultdict(list)

    def timed(kind: str, action, *args):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        result = action(*args)
        timings[kind].append(time.perf_counter() - start)
        return result

    for _ in range(args.calls):
        call = Caller(client, GIULIA)
        timed("voice (answer)", call.dial_in)
        timed("menu step", call.stay_silent)
        timed("menu step", call.press, "1")
        timed("menu step", call.press, "1")
        timed("record action", call.speak)
        timed("open ticket", call.press, "1")
        timed("callback", call.recording_ready)
        timed("callback", call.hang_up)

    print(f"{args.calls} calls on {url.split(':')[0]}")
    print(f"{'webhook':<16} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, values in timings.items():
        ms = sorted(v * 1000 for v in values)
        q = statistics.quantiles(ms, n=100)
        print(f"{kind:<16} {len(ms):>6} {q[49]:>8.1f} {q[94]:>8.1f} {q[98]:>8.1f} {ms[-1]:>8.1f}")


if __name__ == "__main__":
    main()
