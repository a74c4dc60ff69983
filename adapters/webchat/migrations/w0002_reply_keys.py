"""Web chat replies encrypted at rest: the id of each reply's key (GATEWAY_CHANNEL_DATA_KEYS)
beside its text. Replies stored before have no key id and are read as they are until
`gateway data rotate` encrypts them (they live only as long as their session anyway).

Revision ID: w0002
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "w0002"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webchat_replies", sa.Column("key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("webchat_replies", "key_id")
