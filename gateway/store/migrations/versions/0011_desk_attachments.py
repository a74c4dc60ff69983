"""What a person sent besides text, fetched from the provider by the desk and kept like
the transcript: one row per attachment, pending until fetched, then stored or refused.
And what people wrote encrypted at rest: beside each encrypted value the id of its data
key (empty for a value written before, which `gateway data rotate` encrypts).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "desk_attachments",
        sa.Column("attachment_id", sa.String(32), primary_key=True),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("conversation_id", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("channel_kind", sa.String(40), nullable=False),
        sa.Column("channel_instance", sa.String(80), nullable=False),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("declared_type", sa.String(255), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("data", sa.LargeBinary, nullable=True),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("inline", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("desk_attachments_by_conversation", "desk_attachments", ["conversation_id"])
    op.create_index("desk_attachments_pending", "desk_attachments", ["status", "next_attempt_at"])
    for table in ("desk_messages", "desk_handovers"):
        op.add_column(table, sa.Column("key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    for table in ("desk_messages", "desk_handovers"):
        op.drop_column(table, "key_id")
    op.drop_index("desk_attachments_pending", "desk_attachments")
    op.drop_index("desk_attachments_by_conversation", "desk_attachments")
    op.drop_table("desk_attachments")
