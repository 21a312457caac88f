"""the console: technicians become users with roles and skills; tickets carry the work's facts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

def ticket_columns() -> list[sa.Column[object]]:
    """The tickets' new columns (new objects each time: a Column belongs to one table)."""
    return [
        sa.Column("skill_needed", sa.String(length=50), nullable=True),
        sa.Column("vendor_name", sa.String(length=200), nullable=True),
        sa.Column("vendor_reference", sa.String(length=100), nullable=True),
        sa.Column("vendor_restore_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("courtesy_device", sa.String(length=200), nullable=True),
        sa.Column("courtesy_lent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("courtesy_returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("urgency_confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    # The technicians are the first users: same ids, so tickets keep their technician.
    op.rename_table("technicians", "users")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("role", sa.String(length=20), nullable=False, server_default="technician"))
        batch.add_column(sa.Column("skills", sa.String(length=500), nullable=False, server_default=""))
        batch.add_column(sa.Column("language", sa.String(length=5), nullable=False, server_default="it"))
        batch.add_column(sa.Column("password_hash", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
        )
    with op.batch_alter_table("tickets") as batch:
        for column in ticket_columns():
            batch.add_column(column)
    with op.batch_alter_table("ticket_events") as batch:
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_ticket_events_user_id_users", "users", ["user_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("ticket_events") as batch:
        batch.drop_constraint("fk_ticket_events_user_id_users", type_="foreignkey")
        batch.drop_column("user_id")
    with op.batch_alter_table("tickets") as batch:
        for column in reversed(ticket_columns()):
            batch.drop_column(column.name)
    with op.batch_alter_table("users") as batch:
        for name in ("created_at", "session_version", "active", "password_hash", "language", "skills", "role"):
            batch.drop_column(name)
    op.rename_table("users", "technicians")
