"""The core's tables: what the router, outbound and desk roles keep. A channel kind
that keeps state has tables and migrations of its own, in its folder."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
conversation_regions = sa.Table(
    "conversation_regions",
    metadata,
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("region", sa.String(80), nullable=False),
    sa.Column("transferred", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
auto_replies = sa.Table(
    "auto_replies",
    metadata,
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("period_end", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

sent_replies = sa.Table(
    "sent_replies",
    metadata,
    sa.Column("message_id", sa.String(100), primary_key=True),
    sa.Column("channel_kind", sa.String(40), nullable=False),
    sa.Column("provider_message_id", sa.String(100), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
)

desk_conversations = sa.Table(
    "desk_conversations",
    metadata,
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
desk_messages = sa.Table(
    "desk_messages",
    metadata,
    sa.Column("message_id", sa.String(100), primary_key=True),
    sa.Column("conversation_id", sa.String(100), nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("author", sa.String(80), nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("attachments", sa.Text, nullable=False, server_default="[]"),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
