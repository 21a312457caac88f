"""A local mail sink for development: an SMTP server that delivers nowhere.

Every message it accepts is saved as `<dir>/<UTC timestamp>-<short id>.eml`, mode 0600 since mails hold
personal data, with LF line ends and the envelope's sender and recipients as `X-MailFrom` and `X-RcptTo`
headers; and it is announced on stdout in one line, `mail: to giulia.rossi@example.it cc marco.bianchi@example.it
— Subject`. SIGTERM or SIGINT stops it. `scripts/run` starts it when no SMTP server is configured:

    python -m ivr.simulator.mail_sink --dir var/mail --port 8025
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import signal
import sys
import weakref
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session


class Sink:
    """The aiosmtpd handler: saves each message under `directory` and prints a line about it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        try:
            save(self.directory, content, envelope.mail_from or "", envelope.rcpt_tos)
        except OSError as error:
            print(f"mail sink: could not save a message: {error}", file=sys.stderr, flush=True)
            return "451 Requested action aborted: local error in processing"
        print(summary(content, envelope.rcpt_tos), flush=True)
        return "250 Message accepted for delivery"


def save(directory: Path, content: bytes, mail_from: str, rcpt_tos: list[str]) -> Path:
    """Write the message atomically (a hidden temporary file renamed into place), readable by the user only.

    The envelope goes first as two headers; lines end in LF, as in other mail files on Unix.
    """
    now = datetime.now(UTC)
    name = f"{now:%Y%m%dT%H%M%S}.{now:%f}Z-{secrets.token_hex(4)}.eml"
    envelope = b"X-MailFrom: %b\nX-RcptTo: %b\n" % (_header_safe(mail_from), _header_safe(", ".join(rcpt_tos)))
    final, temporary = directory / name, directory / f".{name}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(envelope + content.replace(b"\r\n", b"\n"))  # SMTP's CRLF, as Unix files have it
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return final


def summary(content: bytes, rcpt_tos: list[str]) -> str:
    """`mail: to ... cc ... bcc ... — Subject`: the envelope's recipients, sorted by the header that names them."""
    try:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(content)
        subject = " ".join(str(headers.get("Subject", "")).split()) or "(no subject)"
        named_to = _addresses(headers.get_all("To", []) + headers.get_all("Resent-To", []))
        named_cc = _addresses(headers.get_all("Cc", []) + headers.get_all("Resent-Cc", []))
    except Exception:  # a sink takes what it is given; the line is printed all the same
        subject, named_to, named_cc = "(unreadable headers)", set(), set()
    groups: dict[str, list[str]] = {"to": [], "cc": [], "bcc": []}
    for rcpt in rcpt_tos:
        key = rcpt.lower()
        kind = "to" if key in named_to or not (named_to or named_cc) else "cc" if key in named_cc else "bcc"
        groups[kind].append(rcpt)
    recipients = " ".join(f"{kind} {', '.join(rcpts)}" for kind, rcpts in groups.items() if rcpts)
    return f"mail: {recipients or 'to (nobody)'} — {subject}"


def _addresses(values: list[object]) -> set[str]:
    return {address.lower() for _, address in getaddresses([str(v) for v in values]) if address}


def _header_safe(value: str) -> bytes:
    return " ".join(value.split()).encode("utf-8", "surrogateescape")


async def serve(directory: Path, host: str, port: int) -> None:
    """Accept mail on host:port until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sink = Sink(directory)
    sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def factory() -> SMTP:
        # A fixed hostname: the default, socket.getfqdn(), can wait seconds on a machine without DNS.
        smtp = SMTP(sink, hostname="mail-sink.localhost", enable_SMTPUTF8=True, loop=loop)
        sessions.add(smtp)
        return smtp

    server = await loop.create_server(factory, host=host, port=port)
    try:
        await stop.wait()
    finally:
        server.close()
        for smtp in list(sessions):
            if smtp.transport is not None:
                smtp.transport.close()
        await asyncio.wait_for(server.wait_closed(), timeout=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.simulator.mail_sink", description="A local SMTP sink.")
    parser.add_argument("--dir", type=Path, default=Path("var/mail"), help="where messages are saved (var/mail)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    args = parser.parse_args(argv)

    os.umask(0o077)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        args.dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(serve(args.dir, args.host, args.port))
    except OSError as error:
        print(f"mail sink: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
