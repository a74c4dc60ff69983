"""Router state: a conversation's current region, and the auto-replies sent.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_regions",
        sa.Column("conversation_id", sa.String(100), primary_key=True),
        sa.Column("region", sa.String(80), nullable=False),
        sa.Column("transferred", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "auto_replies",
        sa.Column("conversation_id", sa.String(100), primary_key=True),
        sa.Column("period_end", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("auto_replies_created_at", "auto_replies", ["created_at"])


def downgrade() -> None:
    op.drop_index("auto_replies_created_at", "auto_replies")
    op.drop_table("auto_replies")
    op.drop_table("conversation_regions")
