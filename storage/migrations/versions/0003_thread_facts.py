"""the thread keeps each event's facts, not a sentence

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Callable
from typing import Any

from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The columns this migration reads and writes, as they are while it runs.
events = sa.table(
    "ticket_events",
    sa.column("id", sa.Integer()),
    sa.column("text", sa.Text()),
    sa.column("facts", sa.JSON()),
)


def upgrade() -> None:
    # An entry written before keeps its sentence as a note, said as it is in every language.
    _move("text", "facts", sa.JSON(), lambda text: {"note": text})


def downgrade() -> None:
    # The sentence comes back for notes; other entries keep their facts as text.
    _move("facts", "text", sa.Text(), _sentence)


def _move(old: str, new: str, new_type: sa.types.TypeEngine, convert: Callable[[Any], Any]) -> None:
    """Replace column `old` of every entry by `new`, filled with `convert` of the old value."""
    with op.batch_alter_table("ticket_events") as batch:
        batch.add_column(sa.Column(new, new_type, nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(events.c.id, events.c[old])).all()
    if rows:
        connection.execute(
            events.update().where(events.c.id == sa.bindparam("event_id")).values({new: sa.bindparam("value")}),
            [{"event_id": row[0], "value": convert(row[1])} for row in rows],
        )
    with op.batch_alter_table("ticket_events") as batch:
        batch.alter_column(new, existing_type=new_type, nullable=False)
        batch.drop_column(old)


def _sentence(facts: dict) -> str:
    if set(facts) == {"note"}:
        return str(facts["note"])
    return "; ".join(f"{name}: {value}" for name, value in facts.items())
