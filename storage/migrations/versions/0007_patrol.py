"""patrol: rounds and their points, hand-overs, findings; the site's routes and plans; sign-ins name their round

A round is generated once per (site, plan, planned guard, start): a unique key a second gateway's
insert runs into. The site gets its validated `routes` and `plans` sections as JSON.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 10:20:01.630864
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "rounds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("route", sa.String(length=64), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("planned_guard_id", sa.Integer(), nullable=False),
        sa.Column("guard_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grace_s", sa.Integer(), nullable=False),
        sa.Column("makeup", sa.Boolean(), nullable=False),
        sa.Column("early_finish", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("completion_pct", sa.Double(), nullable=False),
        sa.Column("lateness_s", sa.Integer(), nullable=False),
        sa.Column("last_signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_point", sa.String(length=64), nullable=True),
        sa.Column("last_tap_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finish_reason", sa.Text(), nullable=True),
        sa.Column("alert_open", sa.Boolean(), nullable=False),
        sa.Column("alert_closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("alert_closed_by", sa.String(length=64), nullable=True),
        sa.Column("alert_comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["guard_id"], ["staff.id"], name=op.f("fk_rounds_guard_id_staff")),
        sa.ForeignKeyConstraint(["planned_guard_id"], ["staff.id"], name=op.f("fk_rounds_planned_guard_id_staff")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_rounds_site_id_sites"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rounds")),
        sa.UniqueConstraint(
            "site_id",
            "plan",
            "planned_guard_id",
            "starts_at",
            name=op.f("uq_rounds_site_id_plan_planned_guard_id_starts_at"),
        ),
    )
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.create_index("ix_rounds_guard_starts", ["guard_id", "starts_at"], unique=False)
        batch_op.create_index("ix_rounds_site_starts", ["site_id", "starts_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_rounds_state"), ["state"], unique=False)

    op.create_table(
        "round_handovers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("round_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_guard_id", sa.Integer(), nullable=False),
        sa.Column("to_guard_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["from_guard_id"], ["staff.id"], name=op.f("fk_round_handovers_from_guard_id_staff")),
        sa.ForeignKeyConstraint(
            ["round_id"], ["rounds.id"], name=op.f("fk_round_handovers_round_id_rounds"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["to_guard_id"], ["staff.id"], name=op.f("fk_round_handovers_to_guard_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_round_handovers")),
    )
    with op.batch_alter_table("round_handovers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_round_handovers_round_id"), ["round_id"], unique=False)

    op.create_table(
        "findings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("round_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("photos", sa.JSON(), nullable=False),
        sa.Column("reported_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name=op.f("fk_findings_location_id_locations")),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_findings_round_id_rounds")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_findings_site_id_sites"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_findings_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index("ix_findings_site_created", ["site_id", "created_at"], unique=False)

    op.create_table(
        "round_points",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("round_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("min_gap_s", sa.Integer(), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("condition", sa.String(length=16), nullable=True),
        sa.Column("missed_alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name=op.f("fk_round_points_location_id_locations")),
        sa.ForeignKeyConstraint(
            ["round_id"], ["rounds.id"], name=op.f("fk_round_points_round_id_rounds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_round_points")),
        sa.UniqueConstraint("round_id", "checkpoint", name=op.f("uq_round_points_round_id_checkpoint")),
    )
    with op.batch_alter_table("round_points", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_round_points_round_id"), ["round_id"], unique=False)

    with op.batch_alter_table("signins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("round_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch_op.add_column(sa.Column("result", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("next_location_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_signins_next_location_id_locations"), "locations", ["next_location_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_signins_round_id"), ["round_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_signins_round_id_rounds"), "rounds", ["round_id"], ["id"])

    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("routes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("plans", sa.JSON(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("plans")
        batch_op.drop_column("routes")

    with op.batch_alter_table("signins", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_signins_round_id_rounds"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_signins_round_id"))
        batch_op.drop_constraint(batch_op.f("fk_signins_next_location_id_locations"), type_="foreignkey")
        batch_op.drop_column("next_location_id")
        batch_op.drop_column("result")
        batch_op.drop_column("round_id")

    with op.batch_alter_table("round_points", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_round_points_round_id"))

    op.drop_table("round_points")
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index("ix_findings_site_created")

    op.drop_table("findings")
    with op.batch_alter_table("round_handovers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_round_handovers_round_id"))

    op.drop_table("round_handovers")
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rounds_state"))
        batch_op.drop_index("ix_rounds_site_starts")
        batch_op.drop_index("ix_rounds_guard_starts")

    op.drop_table("rounds")
