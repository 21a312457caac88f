"""What our webhooks cost in instructions, counted by callgrind, against the bare signed Flask answer.

    .venv/bin/python -m benchmarks.instructions [--only WORDS] [--requests 40]

Times move with whatever else a shared machine runs; the instructions a process executes do
not. For the baseline (`benchmarks.baseline_app`) and each webhook of `benchmarks.webhooks_wrk`,
this plays the webhook in-process on a fresh SQLite file (the app's WSGI callable, no HTTP
server), under valgrind's callgrind, twice: after 20 requests to warm up, once with no more
and once with `--requests` more. The difference, divided by `--requests`, is what one request
costs: the app's setup, the seeding and the warm-up cancel out. What the kernel does for a
request (SQLite's writes, sockets) is not counted, nor is gunicorn's part: for a change to
the webhooks' own code, compare these figures before and after; for what a webhook costs in
all, `benchmarks.webhooks_wrk`. Debian's `valgrind` is installed with apt-get when missing;
each target takes a few minutes.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from benchmarks import webhooks_wrk as wrk_benchmark
from ivr.simulator import twilio_requests as twilio
from storage import db as storage_db

WARM_UP = 20
PORT = 8000  # the port of the URLs signed; nothing listens on it
BASELINE = "baseline"
NAMES = (BASELINE, *(target.name for target in wrk_benchmark.TARGETS))


def counted(valgrind: str, name: str, requests: int) -> int:
    """The instructions callgrind counts in a whole run that plays `requests` requests after the warm-up."""
    command = [
        valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, "-m", "benchmarks.instructions", "--play", name, "--requests", str(requests),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    found = re.search(r"Collected : (\d+)", completed.stderr)
    if completed.returncode != 0 or found is None:
        raise SystemExit(f"{name}: the run under callgrind failed:\n{completed.stdout}{completed.stderr[-3000:]}")
    return int(found.group(1))


def per_request(valgrind: str, name: str, requests: int) -> float:
    return (counted(valgrind, name, requests) - counted(valgrind, name, 0)) / requests


# -- one target, played in-process (the process callgrind counts) ------------------------------------------


class InProcessServer:
    """What webhooks_wrk's walking and seeding need of a server, served by the app's test client."""

    name = "in-process"
    port = PORT
    base_url = f"http://127.0.0.1:{PORT}"

    def __init__(self, database_url: str, engine: Any) -> None:
        self.database_url, self.engine = database_url, engine


def play(name: str, requests: int) -> None:
    """Warm up, then play `requests` requests of the target; any non-2xx answer or apology fails the run.

    Left out, because each costs tens of millions of instructions that would land in one run of
    the two and not the other, by where a threshold happens to fall: SQLite's checkpoints (one
    copies the write-ahead log into the database file every storage.db.WAL_AUTOCHECKPOINT_PAGES
    pages; the process ends without closing the database, which would copy it too), and the
    garbage collector's full collections of the app's long-lived objects (frozen after the warm-up).
    """
    storage_db.WAL_AUTOCHECKPOINT_PAGES = 0  # read by the engines as they connect: no automatic checkpoint
    work_dir = Path(tempfile.mkdtemp(prefix="ivr-instructions-"))
    try:
        url = f"sqlite:///{work_dir / 'bench.db'}"
        engine = wrk_benchmark.prepare_database(url)
        os.environ.update(wrk_benchmark.app_env(PORT, url), SPOOL_DIR=str(work_dir / "spool"))
        from ivr import create_app

        app = create_app()
        client = app.test_client()

        def post(server: Any, request: twilio.TwilioRequest) -> tuple[int, str]:
            answer = client.post(request.path, data=request.params, headers=request.headers)
            return answer.status_code, answer.get_data(as_text=True)

        wrk_benchmark.post = post  # the walks and checks of webhooks_wrk, over the test client
        server: Any = InProcessServer(url, engine)
        wsgi: Callable[..., Iterable[bytes]] = app
        if name == BASELINE:
            from benchmarks.baseline_app import create_app as create_baseline

            wsgi = create_baseline()
            prepared = wrk_benchmark.Prepared(wrk_benchmark.BASELINE, server, None, f"{server.base_url}/twilio/voice")
        else:
            target = next(target for target in wrk_benchmark.TARGETS if target.name == name)
            if target.caller == wrk_benchmark.PAOLO:
                wrk_benchmark.give_open_tickets(server, wrk_benchmark.PAOLO, wrk_benchmark.OPEN_TICKETS_OF_PAOLO)
            prepared = wrk_benchmark.prepare(target, server)
        seeded = wrk_benchmark.seed(prepared, WARM_UP + requests)
        for request in seeded[:WARM_UP]:
            answer_directly(wsgi, request)
        gc.collect()
        gc.freeze()  # the app's long-lived objects: no full collection of them lands in one run only
        for request in seeded[WARM_UP:]:
            answer_directly(wsgi, request)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)  # without closing the database (a checkpoint): see above


def answer_directly(wsgi: Callable[..., Iterable[bytes]], request: twilio.TwilioRequest) -> None:
    """One request through the WSGI callable, as gunicorn would hand it over; checked as wrk's script checks.

    The environ is written out by hand, not by werkzeug's EnvironBuilder: what builds it is counted
    with the request, and the builder costs about a third of the baseline's instructions."""
    body = urlencode(request.params).encode()
    parts = urlsplit(request.url)
    environ = {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": parts.path, "QUERY_STRING": parts.query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(PORT), "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": f"127.0.0.1:{PORT}", "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_TWILIO_SIGNATURE": request.headers["X-Twilio-Signature"],
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }  # fmt: skip
    statuses: list[str] = []
    answer = wsgi(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        text = b"".join(answer).decode("utf-8", "replace")
    finally:
        getattr(answer, "close", lambda: None)()
    if not statuses[0].startswith("2") or wrk_benchmark.APOLOGY in text:
        raise SystemExit(f"{request.path} answered {statuses[0]}: {text[:300]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40, help="requests counted per target (after the warm-up)")
    parser.add_argument("--only", action="append", metavar="WORDS", help="only the webhooks whose name has WORDS")
    parser.add_argument("--play", choices=NAMES, help=argparse.SUPPRESS)  # one target, in the counted process
    args = parser.parse_args(argv)
    if args.play:
        play(args.play, args.requests)
        return
    valgrind = wrk_benchmark.ensure_installed("valgrind")
    names = [name for name in NAMES[1:] if not args.only or any(words in name for words in args.only)]
    baseline = per_request(valgrind, BASELINE, args.requests)
    print("| webhook | instructions per request | × baseline |\n| --- | ---: | ---: |", flush=True)
    print(f"| {BASELINE} | {baseline / 1e6:.2f} M | 1.00 |", flush=True)
    for name in names:
        cost = per_request(valgrind, name, args.requests)
        print(f"| {name} | {cost / 1e6:.2f} M | {cost / baseline:.2f} |", flush=True)


if __name__ == "__main__":
    main()
