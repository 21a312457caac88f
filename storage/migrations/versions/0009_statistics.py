"""statistics: when a call was forwarded to a technician and when it heard a ticket's status; indexes for a
period's calls, a customer's period of tickets, and the work not yet done

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

Calls from before are left without the two moments: the statistics count them as neither.
"""

from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CALL_COLUMNS = ("forwarded_at", "status_heard_at")
# name: (table, columns)
INDEXES = {
    "ix_calls_started_at": ("calls", ["started_at"]),  # the calls of a period
    "ix_tickets_customer_id_created_at": ("tickets", ["customer_id", "created_at"]),  # a customer's period
    "ix_pending_work_done_at_failed_at": ("pending_work", ["done_at", "failed_at"]),  # the work not done
}


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        for name in CALL_COLUMNS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, (table, _) in reversed(INDEXES.items()):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("calls") as batch:
        for name in reversed(CALL_COLUMNS):
            batch.drop_column(name)
