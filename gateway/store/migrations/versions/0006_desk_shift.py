"""The desk for a whole shift: the registration made at close (kept for statistics after
the conversation's retention, with nothing that identifies a person) and the handover
note of a transfer.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "desk_registrations",
        sa.Column("registration_id", sa.String(40), primary_key=True),
        sa.Column("conversation_id", sa.String(100), nullable=True),  # emptied at retention
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
    op.create_index("desk_registrations_closed", "desk_registrations", ["team", "closed_at"])
    op.create_index("desk_registrations_conversation", "desk_registrations", ["conversation_id"])
    op.create_table(
        "desk_handovers",
        sa.Column("handover_id", sa.String(40), primary_key=True),
        sa.Column("conversation_id", sa.String(100), nullable=False),
        sa.Column("from_team", sa.String(80), nullable=False),
        sa.Column("to_team", sa.String(80), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("desk_handovers_conversation", "desk_handovers", ["conversation_id", "at"])


def downgrade() -> None:
    op.drop_index("desk_handovers_conversation", "desk_handovers")
    op.drop_table("desk_handovers")
    op.drop_index("desk_registrations_conversation", "desk_registrations")
    op.drop_index("desk_registrations_closed", "desk_registrations")
    op.drop_table("desk_registrations")
