"""incidents: sensors' rule state and latest reading, alarms, emergency tickets, the outbox

At most one active alarm per (device, alarm type) and one open ticket per source are unique
partial indexes (`cleared_at IS NULL`, `closed_at IS NULL`), so two gateways cannot open two.
The site gets its validated `alarm_rules` and `roster` sections as JSON.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 07:18:23.511920
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("site_code", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("notice", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_state_due", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "alarm_snoozes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_alarm_snoozes_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_snoozes")),
    )
    with op.batch_alter_table("alarm_snoozes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alarm_snoozes_device_id"), ["device_id"], unique=False)

    op.create_table(
        "rule_states",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("alarm_type", sa.String(length=32), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_rule_states_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_states")),
        sa.UniqueConstraint("device_id", "alarm_type", name=op.f("uq_rule_states_device_id_alarm_type")),
    )
    op.create_table(
        "sensor_latest",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("msg_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_sensor_latest_device_id_devices"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_sensor_latest_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_sensor_latest")),
    )
    with op.batch_alter_table("sensor_latest", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sensor_latest_site_id"), ["site_id"], unique=False)

    op.create_table(
        "tickets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("procedure", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title_zh", sa.String(length=300), nullable=False),
        sa.Column("title_en", sa.String(length=300), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("source_key", sa.String(length=128), nullable=True),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("floor", sa.Integer(), nullable=True),
        sa.Column("departments", sa.JSON(), nullable=False),
        sa.Column("first_responder", sa.String(length=64), nullable=True),
        sa.Column("deadlines", sa.JSON(), nullable=False),
        sa.Column("escalation_level", sa.String(length=32), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("alarm_cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=64), nullable=True),
        sa.Column("record", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["building_id"], ["buildings.id"], name=op.f("fk_tickets_building_id_buildings")),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_tickets_device_id_devices")),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name=op.f("fk_tickets_location_id_locations")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_tickets_site_id_sites"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_site_state", ["site_id", "state"], unique=False)
        batch_op.create_index(
            "uq_tickets_open_source",
            ["source_key"],
            unique=True,
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
        )

    op.create_table(
        "alarms",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("alarm_type", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("peak_severity", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("floor", sa.Integer(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_value", sa.JSON(), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("ack_comment", sa.Text(), nullable=True),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(["building_id"], ["buildings.id"], name=op.f("fk_alarms_building_id_buildings")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_alarms_device_id_devices"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name=op.f("fk_alarms_location_id_locations")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_alarms_site_id_sites"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_alarms_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
    )
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.create_index("ix_alarms_site_opened", ["site_id", "opened_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarms_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index(
            "uq_alarms_active_device_type",
            ["device_id", "alarm_type"],
            unique=True,
            sqlite_where=sa.text("cleared_at IS NULL"),
            postgresql_where=sa.text("cleared_at IS NULL"),
        )

    op.create_table(
        "ticket_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_events_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_events")),
    )
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_events_ticket", ["ticket_id", "id"], unique=False)

    op.create_table(
        "ticket_steps",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("text_zh", sa.Text(), nullable=False),
        sa.Column("text_en", sa.Text(), nullable=False),
        sa.Column("safety_critical", sa.Boolean(), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("done_by", sa.String(length=64), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("safety_confirmed", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_steps_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_steps")),
        sa.UniqueConstraint("ticket_id", "position", name=op.f("uq_ticket_steps_ticket_id_position")),
    )
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alarm_rules", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("roster", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("roster")
        batch_op.drop_column("alarm_rules")

    op.drop_table("ticket_steps")
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_events_ticket")

    op.drop_table("ticket_events")
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_alarms_active_device_type",
            sqlite_where=sa.text("cleared_at IS NULL"),
            postgresql_where=sa.text("cleared_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_alarms_ticket_id"))
        batch_op.drop_index("ix_alarms_site_opened")

    op.drop_table("alarms")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_tickets_open_source",
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
        )
        batch_op.drop_index("ix_tickets_site_state")

    op.drop_table("tickets")
    with op.batch_alter_table("sensor_latest", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sensor_latest_site_id"))

    op.drop_table("sensor_latest")
    op.drop_table("rule_states")
    with op.batch_alter_table("alarm_snoozes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alarm_snoozes_device_id"))

    op.drop_table("alarm_snoozes")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_state_due")

    op.drop_table("outbox")
