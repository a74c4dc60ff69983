"""Outbound state: the replies a provider has accepted, so a redelivered reply is not sent twice.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sent_replies",
        sa.Column("message_id", sa.String(100), primary_key=True),
        sa.Column("channel_kind", sa.String(40), nullable=False),
        sa.Column("provider_message_id", sa.String(100), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("sent_replies_sent_at", "sent_replies", ["sent_at"])


def downgrade() -> None:
    op.drop_index("sent_replies_sent_at", "sent_replies")
    op.drop_table("sent_replies")
