"""bounded quarantine: payload prefix, size, SHA-256, folded repeats, per-device rejection budgets

Rows kept before this revision keep their payload as it was (their size is filled in; their
digest stays empty) and have a key of the old kind, so new repeats do not fold into them; the
quarantine's retention prunes them like any other row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("last_seen", UTC_TS, nullable=True))
        batch.add_column(sa.Column("count", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("size", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("source", sa.String(length=160), nullable=True))
    op.execute("UPDATE quarantine SET last_seen = received_at, size = length(payload)")
    with op.batch_alter_table("quarantine") as batch:
        batch.alter_column("last_seen", existing_type=UTC_TS, nullable=False)
        batch.create_index("ix_quarantine_last_seen", ["last_seen"])
    op.create_table(
        "quarantine_budgets",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("bucket", sa.String(length=160), nullable=False),
        sa.Column("window_start", UTC_TS, nullable=False),
        sa.Column("site_code", sa.String(length=64), nullable=True),
        sa.Column("device_code", sa.String(length=64), nullable=True),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("over", sa.Integer(), nullable=False),
        sa.Column("last_over_at", UTC_TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine_budgets"),
        sa.UniqueConstraint("bucket", "window_start", name="uq_quarantine_budgets_bucket_window_start"),
    )
    op.create_index("ix_quarantine_budgets_window_start", "quarantine_budgets", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_budgets_window_start", table_name="quarantine_budgets")
    op.drop_table("quarantine_budgets")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_index("ix_quarantine_last_seen")
        batch.drop_column("source")
        batch.drop_column("sha256")
        batch.drop_column("size")
        batch.drop_column("count")
        batch.drop_column("last_seen")
