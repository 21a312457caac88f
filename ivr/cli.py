"""The operators' commands: `flask --app wsgi init-db | import-contacts FILE | set-pin CODE | add-user EMAIL |
retry-failed | relay | configure-number NUMBER | customer-report CODE --month YYYY-MM`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from helpdesk import reports
from helpdesk.report_email import html_body, queue_report
from helpdesk.sla import load as load_sla
from ivr.settings import PROJECT_DIR, Settings
from ivr.twilio_number import (
    TWILIO_API,
    NumberError,
    checked_base_url,
    configure_number,
    describe,
    twilio_client,
    webhook_paths,
)
from storage import db
from storage.contacts import ContactImportError, import_contacts
from storage.models import utcnow
from storage.pins import PinError, set_customer_pin
from storage.tickets import retry_failed_work
from storage.users import (
    LANGUAGES,
    ROLES,
    UserError,
    add_or_update_user,
    get_user_by_email,
    password_problems,
    user_problems,
)

REPORTS_DIR = PROJECT_DIR / "var" / "reports"  # where `customer-report` writes, without --output


def register_cli(app: Flask) -> None:
    app.cli.add_command(configure_number_command)
    app.cli.add_command(customer_report_command)

    @app.cli.command("init-db")
    def init_db() -> None:
        """Bring the database schema up to date."""
        db.upgrade(current_app.config["SETTINGS"].database_url)
        click.echo("database is up to date")

    @app.cli.command("import-contacts")
    @click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    def import_contacts_command(csv_file: Path) -> None:
        """Load the customer directory from CSV (all or nothing)."""
        text = csv_file.read_text(encoding="utf-8-sig")
        with current_app.config["SESSIONMAKER"]() as session:
            try:
                with session.begin():
                    summary = import_contacts(session, text)
            except ContactImportError as error:
                click.echo(f"{csv_file}: nothing imported, fix these lines:", err=True)
                for problem in error.problems:
                    click.echo(f"  {problem}", err=True)
                sys.exit(1)
        click.echo(
            f"customers: {summary.customers_added} added, {summary.customers_updated} updated; "
            f"contacts: {summary.contacts_added} added, {summary.contacts_updated} updated"
        )

    @app.cli.command("set-pin")
    @click.argument("customer_code")
    @click.option("--clear", is_flag=True, help="Remove the PIN: only the customer's own numbers hear its tickets.")
    def set_pin_command(customer_code: str, clear: bool) -> None:
        """Set a customer's phone PIN (4 to 8 digits, asked without echo; or PIN from stdin)."""
        pin = None if clear else click.prompt("PIN", hide_input=True, confirmation_prompt=True)
        with current_app.config["SESSIONMAKER"]() as session:
            try:
                with session.begin():
                    set_customer_pin(session, customer_code, pin)
            except PinError as error:
                click.echo(f"not changed: {error}", err=True)
                sys.exit(1)
        click.echo(f"customer {customer_code}: phone PIN {'removed' if clear else 'set'}")

    @app.cli.command("add-user")
    @click.argument("email")
    @click.option("--role", help=f"{' or '.join(ROLES)}; required for a new account.")
    @click.option("--name", help='Full name, "Luca Ferrari"; required for a new account.')
    @click.option("--skills", help="Comma-separated skills of a technician: network,printers.")
    @click.option("--language", help=f"The console's language for this user: {' or '.join(LANGUAGES)} (it when new).")
    @click.option("--keep-password", is_flag=True, help="Change only the details given; the password stays.")
    def add_user_command(
        email: str, role: str | None, name: str | None, skills: str | None, language: str | None, keep_password: bool
    ) -> None:
        """Create a console account or update its details, with a password asked twice without echo (or one line of
        stdin when it is not a terminal). Options not given keep an existing account's values."""
        with current_app.config["SESSIONMAKER"]() as session:
            # Everything but the password is checked before the password is asked for.
            problems = user_problems(session, email, name=name, role=role, skills=skills, language=language)
            if keep_password and not problems and not _user_exists(session, email):
                problems.append("a new account needs a password: leave out --keep-password")
        if problems:
            _refuse(email, problems)
        password = None if keep_password else _read_password()
        if password is not None and password_problems(password):
            _refuse(email, password_problems(password))
        with current_app.config["SESSIONMAKER"]() as session:
            try:
                with session.begin():
                    user, created = add_or_update_user(
                        session, email, name=name, role=role, skills=skills, language=language, password=password
                    )
                    summary = (
                        f"{user.email}: {user.role}, {user.name}, skills {user.skills or '(none)'}, {user.language}"
                    )
            except UserError as error:
                _refuse(email, error.problems)
        click.echo(f"{'created' if created else 'updated'} {summary}")

    @app.cli.command("retry-failed")
    def retry_failed_command() -> None:
        """Give the work that failed for good another round of retries (after fixing the cause)."""
        with current_app.config["SESSIONMAKER"]() as session, session.begin():
            count = retry_failed_work(session)
        click.echo(f"{count} failed follow-up(s) will run again")

    @app.cli.command("relay")
    @click.option("--once", is_flag=True, help="Relay what is pending now, then stop.")
    def relay_command(once: bool) -> None:
        """Enqueue pending work and ingest the fallback spool, every RELAY_INTERVAL seconds."""
        from ivr.worker.relay import run_relay

        run_relay(current_app.config["SETTINGS"], current_app.config["SESSIONMAKER"], once=once)


def _read_password() -> str:
    """The new password: asked twice without echo at a terminal; else the first line of stdin (for scripts)."""
    if _at_terminal():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


def _at_terminal() -> bool:
    return sys.stdin.isatty()


def _user_exists(session: Session, email: str) -> bool:
    return get_user_by_email(session, email) is not None


def _refuse(email: str, problems: list[str]) -> NoReturn:
    click.echo(f"{email}: not changed, because:", err=True)
    for problem in problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


@click.command("configure-number")
@click.argument("phone_number")
@click.option("--base-url", help="The https base URL Twilio calls.  [default: PUBLIC_BASE_URL]")
@click.option("--api-url", default=TWILIO_API, hidden=True, help="Twilio's REST API (tests use a local stand-in).")
@with_appcontext
def configure_number_command(phone_number: str, base_url: str | None, api_url: str) -> None:
    """Point a Twilio number's Voice URL, fallback URL and status callback at this service."""
    settings: Settings = current_app.config["SETTINGS"]
    if not (base_url or settings.public_base_url):
        raise click.ClickException("give --base-url https://<host> (or set PUBLIC_BASE_URL)")
    try:
        base = checked_base_url(base_url or settings.public_base_url or "")
        client = twilio_client(settings.twilio_account_sid, settings.twilio_auth_token, api_url)
        configured = configure_number(client, phone_number, base, webhook_paths(current_app))
    except NumberError as error:
        raise click.ClickException(str(error)) from None
    for line in describe(configured, base):
        click.echo(line)
    if not base.startswith("https://"):
        click.echo("configure-number: Twilio will call over plain http; use https in production", err=True)
    if settings.public_base_url != base:
        click.echo(
            f"configure-number: set PUBLIC_BASE_URL={base} where the service runs, so that Twilio's "
            "signatures check out and callbacks point there",
            err=True,
        )


@click.command("customer-report")
@click.argument("customer_code")
@click.option("--month", "month_text", required=True, help="The month, YYYY-MM: this month or one before.")
@click.option("--send", is_flag=True, help="Email it to the customer's referents (once per month and referent).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the HTML report without --send.  [default: var/reports/CODE-YYYY-MM.html]",
)
@with_appcontext
def customer_report_command(customer_code: str, month_text: str, send: bool, output: Path | None) -> None:
    """A customer's monthly report (tickets, their times and SLA outcomes, medians against the contract):
    written to a file, or with --send queued as an email to each referent in their language."""
    settings: Settings = current_app.config["SETTINGS"]
    now = utcnow()
    table = load_sla(settings.sla_table)
    with current_app.config["SESSIONMAKER"]() as session, session.begin():
        try:
            month = reports.parse_month(month_text, now.astimezone(reports.HELP_DESK_ZONE).date())
            customer = reports.get_customer(session, customer_code)
        except reports.ReportError as error:
            raise click.UsageError(str(error)) from None
        report = reports.build_report(session, customer, month, table, now)
        if not send:
            path = output or REPORTS_DIR / f"{report.customer_code}-{month:%Y-%m}.html"
            # The referents' language, Italian first: English only when every referent reads English.
            languages = {reader.language for reader in report.readers}
            language = "en" if languages == {"en"} else "it"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(html_body(report, language, report.customer_name), encoding="utf-8")
            click.echo(str(path))
            return
        if not report.readers:
            raise click.UsageError(f"customer {report.customer_code} has no referents: nobody to send the report to")
        queued, before = queue_report(session, report)
    for address in queued:
        click.echo(f"queued for {address}")
    for address in before:
        click.echo(f"already queued before, not again: {address}")
