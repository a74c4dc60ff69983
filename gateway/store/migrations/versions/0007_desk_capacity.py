"""A fair queue at the desk: when a conversation was claimed and last answered (an
unanswered claim goes back to the queue, marked), and the sender's pseudonym (to
count a returning contact's earlier conversations; deleted with the conversation).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("desk_conversations", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("desk_conversations", sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "desk_conversations", sa.Column("returned", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.add_column("desk_conversations", sa.Column("sender", sa.String(100), nullable=True))
    op.create_index("desk_conversations_claimed", "desk_conversations", ["claimed_by", "status"])
    op.create_index("desk_conversations_sender", "desk_conversations", ["sender"])


def downgrade() -> None:
    op.drop_index("desk_conversations_sender", "desk_conversations")
    op.drop_index("desk_conversations_claimed", "desk_conversations")
    for column in ("sender", "returned", "answered_at", "claimed_at"):
        op.drop_column("desk_conversations", column)
