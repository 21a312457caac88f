"""indexes on what the line and the console look tickets up by: caller, callback number, contact and phase,
customer, technician, and the queue's phase and urgency

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-15
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# name: columns; each a lookup that, without it, reads the whole table.
INDEXES = {
    "ix_tickets_caller": ["caller"],  # a caller's tickets (API)
    "ix_tickets_callback_number": ["callback_number"],  # the queue's search by phone number
    # a contact's open tickets (status menu); contact_id alone would be ANDed with the status index on
    # PostgreSQL, which reads every open ticket
    "ix_tickets_contact_id_status": ["contact_id", "status"],
    "ix_tickets_customer_id": ["customer_id"],  # the queue's customer filter
    "ix_tickets_technician_id": ["technician_id"],  # the queue's technician filter
    "ix_tickets_status_urgency": ["status", "urgency"],  # the queue: the open phases, then urgency
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "tickets", columns, unique=False)


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="tickets")
