"""Counsellor identity and accountability: server-side sessions, credentials an
account changed itself (password, second factor), and the chained access log.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
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
    op.create_index("sessions_account", "sessions", ["realm", "account"])
    op.create_table(
        "account_credentials",
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
    op.create_table(
        "audit_log",
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
    op.create_index("audit_log_at", "audit_log", ["at"])
    op.create_index("audit_log_account", "audit_log", ["account", "at"])
    op.create_index("audit_log_conversation", "audit_log", ["conversation_id"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("audit_log_conversation", "audit_log")
    op.drop_index("audit_log_account", "audit_log")
    op.drop_index("audit_log_at", "audit_log")
    op.drop_table("audit_log")
    op.drop_table("account_credentials")
    op.drop_index("sessions_account", "sessions")
    op.drop_table("sessions")
