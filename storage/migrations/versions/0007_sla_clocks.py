"""the SLA clocks: each ticket's response and restore deadlines and the moments that stop them; indexes to find
breaches and a period's tickets

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

The deadlines of tickets opened before are left empty: they are counted in SLA time from the
table in force (helpdesk.deadlines), which SQL cannot do; the code counts them when it reads
an empty one. The first response is the first entry a person wrote on the thread (every
action writes one, with its user), the restore the moment a ticket now resolved was resolved.
"""

from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = ("response_due_at", "restore_due_at", "first_response_at", "restored_at")
INDEXES = {
    "ix_tickets_response_due_at": ["response_due_at"],  # tickets past their response deadline
    "ix_tickets_restore_due_at": ["restore_due_at"],  # tickets past their restore deadline
    "ix_tickets_created_at": ["created_at"],  # the tickets opened in a period, for statistics
}


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    for name, columns in INDEXES.items():
        op.create_index(name, "tickets", columns, unique=False)
    op.execute(
        "UPDATE tickets SET first_response_at = (SELECT min(ticket_events.at) FROM ticket_events"
        " WHERE ticket_events.ticket_id = tickets.id AND ticket_events.user_id IS NOT NULL)"
    )
    op.execute("UPDATE tickets SET restored_at = resolved_at WHERE resolved_at IS NOT NULL")


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
