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
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("returned", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("sender", sa.String(100), nullable=True),
    sa.Column("acute", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("wait_notice_sent", sa.Boolean, nullable=False, server_default=sa.false()),
)
desk_messages = sa.Table(
    "desk_messages",
    metadata,
    sa.Column("message_id", sa.String(100), primary_key=True),
    sa.Column("conversation_id", sa.String(100), nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("author", sa.String(80), nullable=True),
    sa.Column("text", sa.Text, nullable=False),  # encrypted (gateway.support.fieldcrypt)
    sa.Column("key_id", sa.String(16), nullable=True),  # empty: written before encryption
    sa.Column("attachments", sa.Text, nullable=False, server_default="[]"),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

# What a person sent besides text: fetched from the provider's own hosts by the desk,
# kept like the transcript and deleted with it. `source` (where the provider keeps it)
# is emptied once the attachment is stored or refused.
desk_attachments = sa.Table(
    "desk_attachments",
    metadata,
    sa.Column("attachment_id", sa.String(32), primary_key=True),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("conversation_id", sa.String(100), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("channel_kind", sa.String(40), nullable=False),
    sa.Column("channel_instance", sa.String(80), nullable=False),
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("declared_type", sa.String(255), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # pending, stored, refused
    sa.Column("reason", sa.String(40), nullable=True),
    sa.Column("content_type", sa.String(100), nullable=True),
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("data", sa.LargeBinary, nullable=True),  # encrypted
    sa.Column("key_id", sa.String(16), nullable=True),
    sa.Column("inline", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("desk_attachments_by_conversation", "conversation_id"),
    sa.Index("desk_attachments_pending", "status", "next_attempt_at"),
)

# Who is signed in: only the hash of a session's secret token is kept (issue 16).
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("public_id", sa.String(32), nullable=False, unique=True),
    sa.Column("realm", sa.String(120), nullable=False),
    sa.Column("account", sa.String(200), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("team", sa.String(80), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("method", sa.String(20), nullable=False),
    sa.Column("stage", sa.String(8), nullable=False),
    sa.Column("credential_stamp", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)
# What an account changed for itself: a new or upgraded password hash (valid while the
# configuration still holds the hash it replaced), its second factor (sealed).
account_credentials = sa.Table(
    "account_credentials",
    metadata,
    sa.Column("realm", sa.String(120), primary_key=True),
    sa.Column("account", sa.String(200), primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=True),
    sa.Column("replaces_hash", sa.String(64), nullable=True),
    sa.Column("totp_sealed", sa.Text, nullable=True),
    sa.Column("totp_pending_sealed", sa.Text, nullable=True),
    sa.Column("totp_last_step", sa.BigInteger, nullable=True),
    sa.Column("recovery_hashes", sa.Text, nullable=False, server_default="[]"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
# The access log (NEN 7513): append-only, each record chained to the one before;
# audit_head holds the last record's number and hash, so a removed tail shows too.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("account", sa.String(200), nullable=False),
    sa.Column("method", sa.String(20), nullable=False),
    sa.Column("on_behalf_of", sa.String(200), nullable=True),
    sa.Column("team", sa.String(120), nullable=True),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("conversation_id", sa.String(100), nullable=True),
    sa.Column("result", sa.String(10), nullable=False),
    sa.Column("reason", sa.String(40), nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# The registration a counsellor makes at close: statistics, kept after the conversation's
# retention (conversation_id is emptied then); no text, no pseudonym, no address.
desk_registrations = sa.Table(
    "desk_registrations",
    metadata,
    sa.Column("registration_id", sa.String(40), primary_key=True),
    sa.Column("conversation_id", sa.String(100), nullable=True),
    sa.Column("team", sa.String(80), nullable=False),
    sa.Column("channel_kind", sa.String(40), nullable=False),
    sa.Column("urgent", sa.Boolean, nullable=False),
    sa.Column("after_hours", sa.Boolean, nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("contact_role", sa.String(40), nullable=False),
    sa.Column("age_group", sa.String(40), nullable=False),
    sa.Column("topics", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(40), nullable=False),
    sa.Column("serious", sa.Boolean, nullable=False),
)
# A transfer's handover note, shown to the receiving team above the conversation.
desk_handovers = sa.Table(
    "desk_handovers",
    metadata,
    sa.Column("handover_id", sa.String(40), primary_key=True),
    sa.Column("conversation_id", sa.String(100), nullable=False),
    sa.Column("from_team", sa.String(80), nullable=False),
    sa.Column("to_team", sa.String(80), nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("note", sa.Text, nullable=False),  # encrypted
    sa.Column("key_id", sa.String(16), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
# What became of a counsellor's reply (the desk shows it beside the message).
reply_deliveries = sa.Table(
    "reply_deliveries",
    metadata,
    sa.Column("message_id", sa.String(100), primary_key=True),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("reason", sa.String(60), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
# A team's standard answers as its coordinator made or changed them in the console (the
# configuration directory is read-only in deployment): beside the team's file answers
# (config/responses/<team>.yaml), in place of a file answer with the same id, and with
# `removed` a file answer hidden. Every desk process reads it at each request.
desk_answers = sa.Table(
    "desk_answers",
    metadata,
    sa.Column("team", sa.String(80), primary_key=True),
    sa.Column("answer_id", sa.String(80), primary_key=True),
    sa.Column("removed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("title_nl", sa.Text, nullable=True),
    sa.Column("title_en", sa.Text, nullable=True),
    sa.Column("text_nl", sa.Text, nullable=True),
    sa.Column("text_en", sa.Text, nullable=True),
    sa.Column("changed_by", sa.String(200), nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)
# What a report counts of each contact, besides its team and day (gateway/store/reports.py).
REPORT_COUNTED = (
    "channel_kind", "registered", "contact_role", "age_group", "outcome", "topics", "serious", "urgent",
    "acute", "transferred", "after_hours", "first_reply_at", "wait_seconds", "left_before_reply",
)  # fmt: skip
# The figures' record, one row per contact (gateway/store/reports.py): no text, pseudonym
# or address; the conversation's id only while the contact is open.
report_contacts = sa.Table(
    "report_contacts",
    metadata,
    sa.Column("contact_id", sa.String(40), primary_key=True),
    sa.Column("conversation_id", sa.String(100), nullable=True),
    sa.Column("team", sa.String(80), nullable=False),  # the team it came to
    sa.Column("final_team", sa.String(80), nullable=False),  # after transfers and moves
    sa.Column("channel_kind", sa.String(40), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("opened_on", sa.Date, nullable=False),  # the day in Europe/Amsterdam
    sa.Column("urgent", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("acute", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("after_hours", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("claimed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("transferred", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("first_reply_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("wait_seconds", sa.Integer, nullable=True),
    sa.Column("left_before_reply", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("registered", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("contact_role", sa.String(40), nullable=True),
    sa.Column("age_group", sa.String(40), nullable=True),
    sa.Column("topics", sa.Text, nullable=True),  # a JSON list of codes
    sa.Column("outcome", sa.String(40), nullable=True),
    sa.Column("serious", sa.Boolean, nullable=True),
    sa.Index("report_contacts_day", "opened_on", "team"),
    # A team's report reads only this index (an index-only scan): its rows are spread
    # over the whole table, a few to a page among the other teams'.
    sa.Index(
        "report_contacts_team",
        "team",
        "opened_on",
        postgresql_include=list(REPORT_COUNTED),
    ),
    sa.Index(
        "report_contacts_open",
        "conversation_id",
        unique=True,
        postgresql_where=sa.text("conversation_id IS NOT NULL"),
        sqlite_where=sa.text("conversation_id IS NOT NULL"),
    ),
)
