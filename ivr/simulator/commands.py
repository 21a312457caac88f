"""The simulator's command: `flask --app wsgi call`, a simulated call against the running service."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

import prompts
from callflows.engine import Menu
from callflows.support_line import FLOW
from ivr.settings import Settings
from ivr.simulator.call import Line, SimulatedCall
from ivr.simulator.caller import Caller, ScriptedCaller, ScriptStep, TerminalCaller
from ivr.simulator.media import CallerVoice, RecordingServer, has_espeak
from ivr.twilio_number import webhook_paths

LINE_NUMBER = "+390392847438"
DEMO_CALLER = "+390392847101"  # Giulia Brambilla, Officine Brambilla, in examples/contacts.csv
RECORDING_PORT = 8099


def register_simulator_cli(app: Flask) -> None:
    app.cli.add_command(call_command)


def language_answer(language: str) -> str | None:
    """The answer to the first question that chooses `language`: silence for the line's own language,
    else the key the menu offers for it (None when it offers none)."""
    if language == prompts.DEFAULT_LANGUAGE:
        return "-"
    first = FLOW.steps[FLOW.start]
    for key, route in first.options.items() if isinstance(first, Menu) else ():
        if "set_language" in route.actions and route.arg == language:
            return key
    return None


def make_caller(keys: str | None, script: Path | None, language: str | None) -> Caller:
    """The scripted caller of --keys or --script, or the person at the terminal; choosing `language` first."""
    first = language_answer(language) if language else None
    if language and first is None:
        click.echo(f"call: the menu offers no key for {language}; the call stays in its own language", err=True)
    if keys is not None or script is not None:
        caller = ScriptedCaller.from_file(script) if script else ScriptedCaller.from_keys(keys or "")
        if first:
            caller.steps.insert(0, ScriptStep(first))
        return caller
    return TerminalCaller(read=input, write=click.echo, queued=[first] if first else [])


def service_line(settings: Settings, url: str) -> Line:
    """The running service at `url`, as Twilio reaches it with this account and these webhooks."""
    paths = webhook_paths(current_app)
    return Line(
        url.rstrip("/"),
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.public_base_url,
        paths.voice,
        paths.status,
    )


def recording_hint(host: str) -> str:
    return (
        "call: the worker downloads recordings only from the hosts in TWILIO_RECORDING_HOSTS; to have the"
        f" message transcribed, run the service with TWILIO_RECORDING_HOSTS=api.twilio.com,{host}"
    )


def serve_until_fetched(recordings: RecordingServer, sids: list[str], linger: float, settings: Settings) -> None:
    """Keep serving the call's recordings until the worker fetched them (at most `linger` seconds)."""
    if linger <= 0:
        if recordings.host not in settings.twilio_recording_hosts:
            click.echo(recording_hint(recordings.host), err=True)
        return
    click.echo(
        f"call: serving the recording until the worker fetches it (at most {linger:g} s, Ctrl-C stops)", err=True
    )
    try:
        fetched = recordings.wait_until_fetched(sids, linger)
    except KeyboardInterrupt:
        return
    click.echo("call: the worker fetched the recording" if fetched else recording_hint(recordings.host), err=True)


@click.command("call")
@click.option(
    "--from", "from_", default=DEMO_CALLER, show_default=True, help="The caller's number ('anonymous' withholds it)."
)
@click.option("--to", default=LINE_NUMBER, show_default=True, help="The number called.")
@click.option(
    "--lang",
    type=click.Choice(["it", "en"]),
    help="Choose the language at the welcome (en presses its key, it lets the offer pass); the answers of --keys"
    " then start at the next question. Also the language of the message after the beep.",
)
@click.option("--url", "base_url", help="The running service.  [default: http://127.0.0.1:$PORT, PORT 5000]")
@click.option("--keys", help='The answers, in order, for a call without a terminal: "-,1,1,rec,1,-".')
@click.option(
    "--script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Answers with what the line must say first: lines 'what the line says -> answer'.",
)
@click.option(
    "--recording",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A WAV file: the message the caller leaves after the beep.",
)
@click.option("--say", "words", help="The message after the beep, spoken by espeak-ng (default: a broken printer).")
@click.option("--speak", is_flag=True, help="Speak what the line says aloud (espeak-ng).")
@click.option("--answer", is_flag=True, help="The technician answers when the line dials.")
@click.option(
    "--recording-port",
    type=int,
    default=RECORDING_PORT,
    show_default=True,
    help="The loopback port that serves the recordings (0: any free port).",
)
@click.option(
    "--linger",
    type=float,
    default=30,
    show_default=True,
    help="After the call, serve the recordings up to this many seconds, until the worker fetched them.",
)
@with_appcontext
def call_command(
    from_: str,
    to: str,
    lang: str | None,
    base_url: str | None,
    keys: str | None,
    script: Path | None,
    recording: Path | None,
    words: str | None,
    speak: bool,
    answer: bool,
    recording_port: int,
    linger: float,
) -> None:
    """Place a simulated call against the running service, exactly as Twilio would, and print it."""
    if keys is not None and script is not None:
        raise click.UsageError("give --keys or --script, not both")
    settings: Settings = current_app.config["SETTINGS"]
    line = service_line(settings, base_url or f"http://127.0.0.1:{os.environ.get('PORT') or 5000}")
    caller = make_caller(keys, script, lang)
    if speak and not has_espeak():
        click.echo("call: --speak needs espeak-ng (apt-get install espeak-ng); printing only", err=True)
    try:
        recordings = RecordingServer(settings.twilio_account_sid, settings.twilio_auth_token, port=recording_port)
    except OSError as error:
        raise click.ClickException(
            f"cannot serve recordings on 127.0.0.1:{recording_port} ({error.strerror}); choose another --recording-port"
        ) from None
    try:
        result = SimulatedCall(
            line,
            caller,
            from_=from_,
            to=to,
            voice=CallerVoice(lang or "it", recording, words),
            recordings=recordings,
            answer_dial=answer,
            speak=speak,
            echo=click.echo,
        ).run()
        unused = caller.unused() if isinstance(caller, ScriptedCaller) else []
        if unused:
            click.echo(f"call: the call ended with answers left over: {','.join(unused)}", err=True)
        if result.recording_sids:
            serve_until_fetched(recordings, result.recording_sids, linger, settings)
    finally:
        recordings.close()
    if not result.ok:
        click.echo(f"call: {len(result.problems)} problem(s) in call {result.call_sid}", err=True)
        sys.exit(1)
