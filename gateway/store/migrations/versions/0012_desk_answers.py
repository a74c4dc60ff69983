"""A team's standard answers made or changed by its coordinator in the console: beside
the configuration's file answers, in place of one with the same id, or (`removed`)
hiding one.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "desk_answers",
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


def downgrade() -> None:
    op.drop_table("desk_answers")
