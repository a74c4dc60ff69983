"""Web chat: sessions (the sequence numbers of both directions) and the replies
waiting for a session's socket, kept for the session's life only.

The web chat kind's own branch (label "webchat"), beside the core's revisions. It
was the core's revision 0003 before kinds kept their own tables, so a database
made then has the tables already: they are made only where they are missing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = ("webchat",)
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("webchat_sessions"):
        return
    op.create_table(
        "webchat_sessions",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("channel_id", sa.String(80), nullable=False),
        sa.Column("client_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("server_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("webchat_sessions_last_seen_at", "webchat_sessions", ["last_seen_at"])
    op.create_table(
        "webchat_replies",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webchat_replies")
    op.drop_index("webchat_sessions_last_seen_at", "webchat_sessions")
    op.drop_table("webchat_sessions")
