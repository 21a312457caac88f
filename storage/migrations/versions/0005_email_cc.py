"""an email may copy others in the same message (Cc): an estimate or a reply to the contact, the referents copied

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-14
"""

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("emails") as batch:
        # Emails queued before copied nobody.
        batch.add_column(sa.Column("cc", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("emails") as batch:
        batch.drop_column("cc")
