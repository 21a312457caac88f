"""identity suggestions, lease tokens and versions, one email per row

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=32), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refusal", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(op.f("ix_emails_ticket_id"), "emails", ["ticket_id"], unique=False)
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("suggested_contact_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_calls_suggested_contact_id_contacts", "contacts", ["suggested_contact_id"], ["id"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("suggested_contact_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_tickets_suggested_contact_id_contacts", "contacts", ["suggested_contact_id"], ["id"]
        )
    with op.batch_alter_table("pending_work") as batch:
        batch.alter_column("ticket_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("email_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("lease_token", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("starts", sa.Integer(), nullable=False, server_default="0"))
        batch.create_foreign_key("fk_pending_work_email_id_emails", "emails", ["email_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("pending_work") as batch:
        batch.drop_constraint("fk_pending_work_email_id_emails", type_="foreignkey")
        batch.drop_column("starts")
        batch.drop_column("version")
        batch.drop_column("lease_token")
        batch.drop_column("email_id")
        batch.alter_column("ticket_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_suggested_contact_id_contacts", type_="foreignkey")
        batch.drop_column("suggested_contact_id")
    with op.batch_alter_table("calls") as batch:
        batch.drop_constraint("fk_calls_suggested_contact_id_contacts", type_="foreignkey")
        batch.drop_column("suggested_contact_id")
    op.drop_index(op.f("ix_emails_ticket_id"), table_name="emails")
    op.drop_table("emails")
