"""The counsellor desk: conversations (team, state, claim) and their transcripts.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "desk_conversations",
        sa.Column("conversation_id", sa.String(100), primary_key=True),
        sa.Column("team", sa.String(80), nullable=False),
        sa.Column("channel_kind", sa.String(40), nullable=False),
        sa.Column("channel_instance", sa.String(80), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("urgent", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("after_hours", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("claimed_by", sa.String(80), nullable=True),
        sa.Column("reply_handle", sa.Text, nullable=False),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("desk_conversations_team_status", "desk_conversations", ["team", "status"])
    op.create_index("desk_conversations_last_activity", "desk_conversations", ["last_activity_at"])
    op.create_table(
        "desk_messages",
        sa.Column("message_id", sa.String(100), primary_key=True),
        sa.Column("conversation_id", sa.String(100), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("author", sa.String(80), nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("attachments", sa.Text, nullable=False, server_default="[]"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("desk_messages_conversation", "desk_messages", ["conversation_id", "at"])


def downgrade() -> None:
    op.drop_index("desk_messages_conversation", "desk_messages")
    op.drop_table("desk_messages")
    op.drop_index("desk_conversations_last_activity", "desk_conversations")
    op.drop_index("desk_conversations_team_status", "desk_conversations")
    op.drop_table("desk_conversations")
