"""The figures' own record: one row per contact (a conversation from its first message,
or its reopening, to its close), with what routing, the desk and the registration knew
of it, and nothing that identifies a person: no text, no pseudonym, no address. It holds
the conversation's id only while the contact is open, and outlives the transcripts'
retention.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_contacts",
        sa.Column("contact_id", sa.String(40), primary_key=True),
        sa.Column("conversation_id", sa.String(100), nullable=True),
        sa.Column("team", sa.String(80), nullable=False),
        sa.Column("final_team", sa.String(80), nullable=False),
        sa.Column("channel_kind", sa.String(40), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_on", sa.Date, nullable=False),
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
        sa.Column("topics", sa.Text, nullable=True),
        sa.Column("outcome", sa.String(40), nullable=True),
        sa.Column("serious", sa.Boolean, nullable=True),
    )
    op.create_index("report_contacts_day", "report_contacts", ["opened_on", "team"])
    # A team's report reads only this (an index-only scan): what it counts besides the team
    # and the day (gateway/store/tables.py's REPORT_COUNTED, as of this revision).
    op.create_index(
        "report_contacts_team",
        "report_contacts",
        ["team", "opened_on"],
        postgresql_include=[
            "channel_kind", "registered", "contact_role", "age_group", "outcome", "topics", "serious",
            "urgent", "acute", "transferred", "after_hours", "first_reply_at", "wait_seconds",
            "left_before_reply",
        ],
    )  # fmt: skip
    op.create_index(
        "report_contacts_open",
        "report_contacts",
        ["conversation_id"],
        unique=True,
        postgresql_where=sa.text("conversation_id IS NOT NULL"),
        sqlite_where=sa.text("conversation_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("report_contacts_open", "report_contacts")
    op.drop_index("report_contacts_team", "report_contacts")
    op.drop_index("report_contacts_day", "report_contacts")
    op.drop_table("report_contacts")
