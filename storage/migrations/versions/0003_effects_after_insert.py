"""effects decided after the insert: no verdict blob in the message log; quarantine kept once per delivery

The tap's answer is rebuilt from its sign-in row, so `inbound_messages.result` goes. A rejected
delivery is keyed by the SHA-256 of its topic and payload, so a redelivery is not kept twice
(rows kept before this revision have no key and stay as they are).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 00:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("result")
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("dedup_key", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_quarantine_dedup_key", ["dedup_key"])


def downgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_constraint("uq_quarantine_dedup_key", type_="unique")
        batch.drop_column("dedup_key")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("result", sa.JSON(), nullable=True))
