"""What our webhooks cost under load, against a bare signed Flask answer, measured with wrk.

    .venv/bin/python -m benchmarks.webhooks_wrk [--seconds 5] [--rounds 3] [--calls-per-second 2500] [--only WORDS]

Run from the project root (gunicorn reads its `gunicorn.conf.py` there). It starts, on
loopback, our app as the Procfile runs it (gunicorn, 2 sync workers, `wsgi:app`) on a fresh
SQLite file and on a private schema of PostgreSQL (`--postgresql-url`), both migrated and
holding the demo directory `examples/contacts.csv`; and `benchmarks.baseline_app`, which
only parses the form, checks the signature and answers fixed TwiML, on 2 workers too.
Debian's `wrk` is installed with apt-get when it is missing.

Every request is signed as Twilio signs it, for the URL it hits, and carries a CallSid of its
own: each measurement gets fresh calls, made by cloning a call that was walked over HTTP to
the step before the one measured, and wrk cycles through the pre-signed requests (a Lua
script). Rounds are interleaved (baseline, then each target on SQLite and on PostgreSQL,
at 1 and at 16 connections; then again), so that the figures compare within one run on a
noisy machine. It prints, per target and connection count, the medians over the rounds of
req/s, p50, p99, the gunicorn workers' CPU per request (utime + stime from /proc) and the
ratio to the baseline's req/s in the same round; and it exits non-zero, saying why, if any
request got a non-2xx answer, an apology, or no answer.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import urlencode
from xml.etree import ElementTree

from sqlalchemy import Engine, Table, create_engine, func, insert, select

from benchmarks import postgresql_schema
from ivr.simulator import twilio_requests as twilio
from storage.contacts import import_contacts
from storage.db import make_engine, make_sessionmaker, upgrade
from storage.models import Call, Ticket

PROJECT_DIR = Path(__file__).resolve().parent.parent
DIRECTORY = PROJECT_DIR / "examples" / "contacts.csv"
GUNICORN = Path(sys.executable).parent / "gunicorn"
POSTGRESQL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-auth-token-not-a-secret"
APOLOGY = "Ci scusi"  # the start of `sorry_error` in prompts/it.toml: what the caller hears when a webhook fails
CONNECTIONS = (1, 16)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Callers from examples/contacts.csv, one per purpose, so that one target's tickets do not weigh on another's.
GIULIA = "+390392847101"  # Giulia Brambilla: the known caller of the menu steps
MARCO = "+390392847215"  # Marco Villa: opens the tickets
PAOLO = "+390287345612"  # Paolo Ferri: has a few open tickets, hears them with key 2
STRANGER = "+393471112233"  # in no directory
OPEN_TICKETS_OF_PAOLO = 3


# -- the servers ---------------------------------------------------------------------------------------


@dataclass
class Server:
    """One gunicorn on loopback: our app on a database, or the baseline (no database)."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    database_url: str | None = None
    engine: Engine | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_gunicorn(name: str, app: str, port: int, env: dict[str, str], log_dir: Path) -> Server:
    """gunicorn as the Procfile runs it (2 workers, access log to stdout), bound to loopback."""
    command = [str(GUNICORN), "--bind", f"127.0.0.1:{port}", "--workers", "2", "--access-logfile", "-", app]
    log = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        command, cwd=PROJECT_DIR, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log
    )
    server = Server(name, port, process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name}: gunicorn exited with {process.returncode}; see {log.name}")
        if len(worker_pids(process.pid)) == 2:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return server
            except OSError:
                pass
        time.sleep(0.2)
    stop(server)
    raise SystemExit(f"{name}: gunicorn did not answer on port {port} within 30 s; see {log.name}")


def stop(server: Server) -> None:
    """Stop gunicorn gracefully (SIGTERM to its master), killing it after 10 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)
    if server.engine is not None:
        server.engine.dispose()


def app_env(port: int, database_url: str) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "API_TOKEN": "bench-api-token",
        "SECRET_KEY": "bench-secret-key",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "QUEUE_NAME": f"bench-{uuid.uuid4().hex[:8]}",
    }


def prepare_database(url: str) -> Engine:
    """Migrate the database and import the demo directory; the engine seeds calls later."""
    upgrade(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session, session.begin():
        import_contacts(session, DIRECTORY.read_text(encoding="utf-8"))
    return engine


def postgresql_answers(url: str) -> bool:
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


# -- CPU of the workers, from /proc -------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    # The command name, in parentheses, may hold spaces: split after its closing parenthesis.
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the master's children."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == master:
                    pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return sorted(pids)


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes, in seconds."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted from the state
    return ticks / CLOCK_TICKS


# -- calls walked over HTTP ------------------------------------------------------------------------------


class WebhookFailed(Exception):
    """A webhook answered non-2xx, or with an apology, while seeding."""


class LiveCall:
    """A call played over HTTP against a server, each answer checked; `last` is the last TwiML."""

    def __init__(self, server: Server, caller: str) -> None:
        self.server = server
        self.twilio_call = twilio.TwilioCall(ACCOUNT_SID, AUTH_TOKEN, caller, status="in-progress")
        self.last: ElementTree.Element | None = None
        self.body = ""

    def send(self, url: str, fields: dict[str, str] | None = None) -> str:
        request = self.twilio_call.request(url, fields)
        status, self.body = post(self.server, request)
        if not 200 <= status < 300 or APOLOGY in self.body:
            raise WebhookFailed(f"{self.server.name}: {request.path} answered {status}: {self.body[:300]}")
        self.last = ElementTree.fromstring(self.body) if self.body else None
        return self.body

    def next_url(self, tag: str) -> str:
        """Where the last TwiML's `tag` leads (Gather, Record: its action; Redirect: its URL)."""
        verb = None if self.last is None else next(self.last.iter(tag), None)
        if verb is None:
            raise WebhookFailed(f"{self.server.name}: no {tag} in {self.body[:300]}")
        return verb.get("action") or (verb.text or "").strip()


def post(server: Server, request: twilio.TwilioRequest) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    try:
        headers = {**request.headers, "Content-Type": "application/x-www-form-urlencoded"}
        connection.request("POST", request.path, urlencode(request.params), headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def to_main_menu(call: LiveCall) -> None:
    call.send(f"{call.server.base_url}/twilio/voice", {"CallStatus": "ringing"})
    call.send(call.next_url("Redirect"))  # silence at the welcome: identified, then the main menu


def to_triage(call: LiveCall) -> None:
    to_main_menu(call)
    call.send(call.next_url("Gather"), twilio.keys_pressed("1"))


def to_confirm_recording(call: LiveCall) -> None:
    to_triage(call)
    call.send(call.next_url("Gather"), twilio.keys_pressed("1"))
    sid = twilio.new_sid("RE")
    message = twilio.recording(sid, 7, twilio.recording_url(ACCOUNT_SID, sid))
    call.send(call.next_url("Record"), twilio.message_left(message))


def answered(call: LiveCall) -> None:
    call.send(f"{call.server.base_url}/twilio/voice", {"CallStatus": "ringing"})


# -- what is measured --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One webhook measured: who calls, how a call reaches it, the request, and where its answer leads."""

    name: str
    caller: str
    prelude: Callable[[LiveCall], None] | None  # None: the request starts the call
    url: Callable[[LiveCall], str]  # the URL measured, given the walked call
    fields: Callable[[], dict[str, str]]
    leads_to: str | None  # a step named in the answer's TwiML; None for callbacks (204, no body)
    opens_tickets: bool = False  # each request must open a ticket: checked by counting them


def voice_url(call: LiveCall) -> str:
    return f"{call.server.base_url}/twilio/voice"


TARGETS = (
    Target("voice, known caller", GIULIA, None, voice_url, lambda: {"CallStatus": "ringing"}, "welcome"),
    Target("voice, unknown caller", STRANGER, None, voice_url, lambda: {"CallStatus": "ringing"}, "welcome"),
    Target(
        "main menu, key 1",
        GIULIA,
        to_main_menu,
        lambda c: c.next_url("Gather"),
        lambda: twilio.keys_pressed("1"),
        "triage",
    ),
    Target(
        "triage, key 1",
        GIULIA,
        to_triage,
        lambda c: c.next_url("Gather"),
        lambda: twilio.keys_pressed("1"),
        "describe_problem",
    ),
    Target(
        "open ticket (confirm, key 1)",
        MARCO,
        to_confirm_recording,
        lambda c: c.next_url("Gather"),
        lambda: twilio.keys_pressed("1"),
        "ticket_opened",
        opens_tickets=True,
    ),
    Target(
        "status callback",
        GIULIA,
        answered,
        lambda c: f"{c.server.base_url}/twilio/status",
        lambda: twilio.call_ended(42),
        None,
    ),
    Target(
        "main menu, key 2, open tickets",
        PAOLO,
        to_main_menu,
        lambda c: c.next_url("Gather"),
        lambda: twilio.keys_pressed("2"),
        "my_tickets",
    ),
)
BASELINE = Target("baseline", GIULIA, None, voice_url, lambda: {"CallStatus": "ringing"}, None)


@dataclass
class Prepared:
    """A target on a server, ready to be seeded: the walked call to clone and the URL measured."""

    target: Target
    server: Server
    template_sid: str | None
    url: str


def prepare(target: Target, server: Server) -> Prepared:
    """Walk one call to the step before the target (the template of the clones), and check the target once."""
    template_sid = None
    if target.prelude is not None:
        template = LiveCall(server, target.caller)
        target.prelude(template)
        template_sid = template.twilio_call.call_sid
    check = LiveCall(server, target.caller)
    if target.prelude is not None:
        target.prelude(check)
    url = target.url(check)
    body = check.send(url, target.fields())
    if target.leads_to is not None and f"/twilio/step/{target.leads_to}" not in body:
        raise WebhookFailed(f"{server.name}: {target.name} did not lead to {target.leads_to}: {body[:300]}")
    return Prepared(target, server, template_sid, url)


def seed(prepared: Prepared, count: int) -> list[twilio.TwilioRequest]:
    """`count` fresh calls at the template's step (rows cloned from it), and the signed request of each."""
    sids = [twilio.new_sid("CA") for _ in range(count)]
    if prepared.template_sid is not None and prepared.server.engine is not None:
        clone_calls(prepared.server.engine, prepared.template_sid, sids)
    requests = []
    for sid in sids:
        call = twilio.TwilioCall(ACCOUNT_SID, AUTH_TOKEN, prepared.target.caller, call_sid=sid, status="in-progress")
        requests.append(call.request(prepared.url, prepared.target.fields()))
    return requests


def clone_calls(engine: Engine, template_sid: str, sids: list[str]) -> None:
    """Insert calls in the template's state (step, attempts, identity, recording), one per CallSid."""
    table = cast(Table, Call.__table__)
    with engine.begin() as connection:
        row = connection.execute(select(table).where(table.c.call_sid == template_sid)).mappings().one()
        rows = []
        for sid in sids:
            clone = {key: value for key, value in row.items() if key != "id"}
            clone["call_sid"] = sid
            if row["recording_sid"] is not None:
                recording_sid = twilio.new_sid("RE")
                clone["recording_sid"] = recording_sid
                clone["recording_url"] = twilio.recording_url(ACCOUNT_SID, recording_sid)
            rows.append(clone)
        connection.execute(insert(table), rows)


def give_open_tickets(server: Server, caller: str, count: int) -> None:
    """Whole calls over HTTP that leave `caller` with `count` open tickets."""
    for _ in range(count):
        call = LiveCall(server, caller)
        to_confirm_recording(call)
        call.send(call.next_url("Gather"), twilio.keys_pressed("1"))


# -- wrk ----------------------------------------------------------------------------------------------------

WRK_SCRIPT = r"""
-- Cycles through pre-signed Twilio requests (path TAB signature TAB body, one per line), each
-- thread its own share; counts non-2xx answers and apologies; prints one JSON line at the end.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local signed = {}
local index = 0
non2xx = 0
apologies = 0
wrapped = 0

function init(args)
  local nthreads = tonumber(args[2])
  local n = 0
  for line in io.lines(args[1]) do
    if n % nthreads == id then
      local path, signature, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      signed[#signed + 1] = wrk.format("POST", path, {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = signature,
      }, body)
    end
    n = n + 1
  end
end

function request()
  index = index + 1
  if index > #signed then
    index = 1
    wrapped = wrapped + 1
  end
  return signed[index]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
  if body and string.find(body, "__APOLOGY__", 1, true) then
    apologies = apologies + 1
  end
end

function done(summary, latency, requests)
  local total = {non2xx = 0, apologies = 0, wrapped = 0}
  for _, thread in ipairs(threads) do
    for key, _ in pairs(total) do
      total[key] = total[key] + thread:get(key)
    end
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non2xx": %d, ' ..
    '"apologies": %d, "wrapped": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), total.non2xx,
    total.apologies, total.wrapped, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
"""


def ensure_installed(binary: str) -> str:
    """The binary's path; Debian's package of the same name is installed when it is missing."""
    found = shutil.which(binary)
    if found is None:
        print(f"{binary} is missing: installing Debian's package (apt-get install {binary})", flush=True)
        subprocess.run(["apt-get", "install", "-y", binary], check=True, stdout=subprocess.DEVNULL, timeout=600)
        found = shutil.which(binary)
        if found is None:
            raise SystemExit(f"apt-get did not install {binary}")
    return found


@dataclass
class Measurement:
    """One wrk run of a target on a server."""

    round: int
    connections: int
    server: str
    target: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    non2xx: int
    apologies: int
    socket_errors: int
    wrapped: int
    missing_tickets: int = 0  # requests of a ticket-opening target that opened none
    ratio: float | None = None  # req/s over the baseline's in the same round and connection count


def run_wrk(
    wrk: str,
    script: Path,
    server: Server,
    requests: list[twilio.TwilioRequest],
    connections: int,
    seconds: int,
    work_dir: Path,
) -> dict[str, int]:
    """wrk against the server, cycling through `requests`; its JSON summary and the workers' CPU seconds."""
    request_file = work_dir / "requests.tsv"
    with request_file.open("w", encoding="utf-8") as out:
        for request in requests:
            out.write(f"{request.path}\t{request.headers['X-Twilio-Signature']}\t{urlencode(request.params)}\n")
    threads = min(connections, 2)
    command = [
        wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
        "-s", str(script), server.base_url, "--", str(request_file), str(threads),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("WRK_JSON ")]
    if completed.returncode != 0 or not lines:
        raise SystemExit(f"wrk failed ({completed.returncode}): {completed.stdout}{completed.stderr}")
    result: dict[str, int] = json.loads(lines[-1].removeprefix("WRK_JSON "))
    return result


def measure(
    wrk: str, script: Path, prepared: Prepared, connections: int, seconds: int, calls: int, round_: int, work_dir: Path
) -> Measurement:
    requests = seed(prepared, calls)
    tickets_before = count_tickets(prepared)
    pids = worker_pids(prepared.server.process.pid)
    before = cpu_seconds(pids)
    result = run_wrk(wrk, script, prepared.server, requests, connections, seconds, work_dir)
    after = cpu_seconds(pids)
    opened = count_tickets(prepared) - tickets_before
    if worker_pids(prepared.server.process.pid) != pids:
        raise SystemExit(f"{prepared.server.name}: a gunicorn worker was replaced during {prepared.target.name}")
    count = max(result["requests"], 1)
    return Measurement(
        round=round_,
        connections=connections,
        server=prepared.server.name,
        target=prepared.target.name,
        requests=result["requests"],
        rps=result["requests"] / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        cpu_us_per_request=(after - before) * 1e6 / count,
        non2xx=result["non2xx"],
        apologies=result["apologies"],
        socket_errors=result["connect"] + result["read"] + result["write"] + result["timeout"],
        wrapped=result["wrapped"],
        missing_tickets=max(0, result["requests"] - opened) if prepared.target.opens_tickets else 0,
    )


def count_tickets(prepared: Prepared) -> int:
    """How many tickets the server's database holds (0 where the target opens none)."""
    if not prepared.target.opens_tickets or prepared.server.engine is None:
        return 0
    with prepared.server.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(Ticket)).scalar_one()


# -- the run --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """The servers of one run, and what was measured."""

    baseline: Server
    apps: list[Server]
    measurements: list[Measurement] = field(default_factory=list)


def start_servers(stack: ExitStack, work_dir: Path, postgresql_url: str | None) -> Run:
    databases = [("SQLite", f"sqlite:///{work_dir / 'bench.db'}")]
    if postgresql_url is not None:
        databases.append(("PostgreSQL", stack.enter_context(postgresql_schema(postgresql_url))))
    apps = []
    for name, url in databases:
        engine = prepare_database(url)
        port = free_port()
        server = start_gunicorn(name, "wsgi:app", port, app_env(port, url), work_dir)
        server.database_url, server.engine = url, engine
        stack.callback(stop, server)
        apps.append(server)
    port = free_port()
    baseline_env = {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    baseline = start_gunicorn("baseline", "benchmarks.baseline_app:create_app()", port, baseline_env, work_dir)
    stack.callback(stop, baseline)
    return Run(baseline, apps)


def benchmark(run: Run, wrk: str, script: Path, args: argparse.Namespace, work_dir: Path) -> None:
    targets = [t for t in TARGETS if not args.only or any(words in t.name for words in args.only)]
    for server in run.apps:
        give_open_tickets(server, PAOLO, OPEN_TICKETS_OF_PAOLO)
    prepared = {(t.name, s.name): prepare(t, s) for t in targets for s in run.apps}
    baseline = prepare(BASELINE, run.baseline)
    calls = args.calls_per_second * args.seconds
    started = time.monotonic()
    for round_ in range(1, args.rounds + 1):
        for connections in CONNECTIONS:
            base = measure(wrk, script, baseline, connections, args.seconds, calls, round_, work_dir)
            base.ratio = 1.0
            run.measurements.append(base)
            for target in targets:
                for server in run.apps:  # A B A B: the databases alternate within the round
                    m = measure(
                        wrk,
                        script,
                        prepared[target.name, server.name],
                        connections,
                        args.seconds,
                        calls,
                        round_,
                        work_dir,
                    )
                    m.ratio = m.rps / base.rps if base.rps else None
                    run.measurements.append(m)
            print(f"round {round_}, {connections} connection(s) done at {time.monotonic() - started:.0f} s", flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(measurements: list[Measurement]) -> str:
    """Medians over the rounds, one line per target, server and connection count."""
    lines = [
        "| target | database | conns | req/s | × baseline | p50 ms | p99 ms | CPU µs/req | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keys: list[tuple[str, str, int]] = []
    for m in measurements:
        key = (m.target, m.server, m.connections)
        if key not in keys:
            keys.append(key)
    keys.sort(key=lambda k: (k[2], ["baseline", *[t.name for t in TARGETS]].index(k[0])))
    for target, server, connections in keys:
        group = [m for m in measurements if (m.target, m.server, m.connections) == (target, server, connections)]
        ratios = [m.ratio for m in group if m.ratio is not None]
        errors = sum(m.non2xx + m.apologies + m.socket_errors for m in group)
        database = "—" if server == "baseline" else server
        lines.append(
            f"| {target} | {database} | {connections} | {median([m.rps for m in group]):,.0f} "
            f"| {median(ratios):.2f} | {median([m.p50_ms for m in group]):.1f} "
            f"| {median([m.p99_ms for m in group]):.1f} | {median([m.cpu_us_per_request for m in group]):,.0f} "
            f"| {errors} |"
        )
    return "\n".join(lines)


def failures(measurements: list[Measurement]) -> list[str]:
    """Why the run failed: any request answered non-2xx, with an apology, or not at all (or opened no ticket)."""
    reasons = []
    for m in measurements:
        where = f"{m.target} on {m.server}, {m.connections} conns, round {m.round}"
        if m.non2xx:
            reasons.append(f"{where}: {m.non2xx} non-2xx answers")
        if m.apologies:
            reasons.append(f"{where}: {m.apologies} apologies ({APOLOGY!r})")
        if m.socket_errors:
            reasons.append(f"{where}: {m.socket_errors} socket errors or timeouts")
        if m.missing_tickets:
            reasons.append(f"{where}: {m.missing_tickets} requests opened no ticket (CallSids reused?)")
    return reasons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--calls-per-second",
        type=int,
        default=2500,
        help="fresh calls seeded per second of each run (default 2500); wrk cycles through them",
    )
    parser.add_argument("--postgresql-url", default=POSTGRESQL_URL, help=f"default {POSTGRESQL_URL}")
    parser.add_argument("--no-postgresql", action="store_true", help="SQLite only")
    parser.add_argument("--json", type=Path, help="also write every measurement to this file")
    parser.add_argument(
        "--only", action="append", metavar="WORDS", help="measure only the targets whose name holds WORDS (repeatable)"
    )
    args = parser.parse_args()

    wrk = ensure_installed("wrk")
    postgresql_url: str | None = None if args.no_postgresql else args.postgresql_url
    if postgresql_url is not None and not postgresql_answers(postgresql_url):
        print(f"PostgreSQL does not answer at {postgresql_url}: measuring SQLite only", flush=True)
        postgresql_url = None

    with ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="webhooks-wrk-")))
        script = work_dir / "signed_requests.lua"
        script.write_text(WRK_SCRIPT.replace("__APOLOGY__", APOLOGY), encoding="utf-8")
        run = start_servers(stack, work_dir, postgresql_url)
        try:
            benchmark(run, wrk, script, args, work_dir)
        except WebhookFailed as failed:
            raise SystemExit(f"FAILED while seeding: {failed}") from None

    print(
        f"\n{args.rounds} round(s) of {args.seconds} s per run, medians over the rounds; gunicorn 2 sync workers each\n"
    )
    print(table(run.measurements))
    wrapped = sorted({m.target for m in run.measurements if m.wrapped and m.server != "baseline"})
    if wrapped:
        print(f"\nnote: wrk reused CallSids for {', '.join(wrapped)}: raise --calls-per-second")
    if args.json is not None:
        args.json.write_text(json.dumps([m.__dict__ for m in run.measurements], indent=1), encoding="utf-8")
    reasons = failures(run.measurements)
    if reasons:
        print("\nFAILED:\n" + "\n".join(f"- {reason}" for reason in reasons), file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
