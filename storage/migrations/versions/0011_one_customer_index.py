"""tickets by customer through one index: (customer_id, created_at) serves the queue's customer filter as
well as a customer's period, so customer_id's own index goes; each new ticket writes one index fewer

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_tickets_customer_id", table_name="tickets")


def downgrade() -> None:
    op.create_index("ix_tickets_customer_id", "tickets", ["customer_id"], unique=False)
