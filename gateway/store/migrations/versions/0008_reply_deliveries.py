"""What became of each counsellor's reply: queued, sent, delivered, read or failed
(with the provider's reason), from the outbound role and the providers' callbacks.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reply_deliveries",
        sa.Column("message_id", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.String(60), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("sent_replies_provider", "sent_replies", ["provider_message_id"])


def downgrade() -> None:
    op.drop_index("sent_replies_provider", "sent_replies")
    op.drop_table("reply_deliveries")
