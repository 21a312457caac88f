"""`flask --app wsgi init-db` on a fresh clone: the SQLite file's folder (`var/`) does not exist yet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect

from ivr import create_app
from ivr.settings import PROJECT_DIR, Secret, Settings
from tests.conftest import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN


def tables_of(database: Path) -> set[str]:
    engine = create_engine(f"sqlite:///{database}")
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_init_db_creates_the_folder_of_the_sqlite_file(tmp_path: Path) -> None:
    var = tmp_path / "fresh-clone" / "var"
    database = var / "ivr.db"
    app = create_app(
        Settings(
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=Secret(AUTH_TOKEN),
            api_token=Secret(API_TOKEN),
            secret_key=Secret("test-secret-key-not-a-secret"),
            database_url=f"sqlite:///{database}",
            recordings_dir=var / "recordings",
            spool_dir=var / "spool",
            model_cache_dir=var / "models",
        )
    )
    try:
        result = app.test_cli_runner().invoke(args=["init-db"])
    finally:
        app.config["ENGINE"].dispose()

    assert result.exit_code == 0, result.output
    assert "database is up to date" in result.output
    assert {"tickets", "calls", "alembic_version"} <= tables_of(database)


def test_init_db_from_the_shell_on_a_fresh_clone(tmp_path: Path) -> None:
    """The command as the README gives it, in a new process, with only the required settings in the environment."""
    var = tmp_path / "var"
    env = {key: value for key, value in os.environ.items() if key.upper() not in {"DATABASE_URL", "FLASK_APP"}} | {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "API_TOKEN": API_TOKEN,
        "SECRET_KEY": "test-secret-key-not-a-secret",
        "DATABASE_URL": f"sqlite:///{var / 'ivr.db'}",
        "RECORDINGS_DIR": str(var / "recordings"),
        "SPOOL_DIR": str(var / "spool"),
        "MODEL_CACHE_DIR": str(var / "models"),
    }
    flask = Path(sys.executable).with_name("flask")
    result = subprocess.run(
        [str(flask), "--app", "wsgi", "init-db"], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert "database is up to date" in result.stdout
    assert "tickets" in tables_of(var / "ivr.db")
