"""device clocks: the skew of a message whose ts was not believed

`inbound_messages.clock_skew_s` is the device's `ts` minus the receipt time, in seconds, for a
message whose `ts` lay outside the clock window (core.device_clock); null when it was believed.
A sign-in's `tapped_at` is then the receipt time. Rows logged before this revision have no skew.
Reused message ids need no column: the conflicting message is quarantined as `id_conflict`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("clock_skew_s", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("clock_skew_s")
