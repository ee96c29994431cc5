"""initial tables

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import mysql

from alembic import op

# The DDL of server.db_types as it was at this revision, frozen here so that a later
# change to those types cannot rewrite history.
MONEY = sa.Numeric(28, 9).with_variant(sa.String(64), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column(
            "password_hash",
            sqlmodel.sql.sqltypes.AutoString(length=255),
            nullable=False,
        ),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("kill_switch", sa.Boolean(), nullable=False),
        sa.Column(
            "max_order_notional",
            MONEY,
            nullable=True,
        ),
        sa.Column(
            "max_position_notional",
            MONEY,
            nullable=True,
        ),
        sa.Column(
            "price_band_percent",
            MONEY,
            nullable=True,
        ),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("ip", sqlmodel.sql.sqltypes.AutoString(length=45), nullable=True),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_audit_events_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_action_created", ["action", "created_at"], unique=False)
        batch_op.create_index("ix_audit_events_user_created", ["user_id", "created_at"], unique=False)

    op.create_table(
        "broker_connections",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("api_key_ciphertext", sa.Text(), nullable=True),
        sa.Column("secret_key_ciphertext", sa.Text(), nullable=True),
        sa.Column("key_hint", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column(
            "last_verified_at",
            UTC_DATETIME,
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_broker_connections_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broker_connections")),
        sa.UniqueConstraint("user_id", "label", name=op.f("uq_broker_connections_user_id_label")),
    )
    with op.batch_alter_table("broker_connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_broker_connections_user_id"), ["user_id"], unique=False)

    op.create_table(
        "refresh_tokens",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("family_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("used_at", UTC_DATETIME, nullable=True),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        sa.Column("replaced_by_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("created_ip", sqlmodel.sql.sqltypes.AutoString(length=45), nullable=True),
        sa.Column("user_agent", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_refresh_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refresh_tokens_family_id"), ["family_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refresh_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("connection_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column(
            "parent_order_id",
            sqlmodel.sql.sqltypes.AutoString(length=36),
            nullable=True,
        ),
        sa.Column(
            "client_order_id",
            sqlmodel.sql.sqltypes.AutoString(length=128),
            nullable=False,
        ),
        sa.Column(
            "broker_order_id",
            sqlmodel.sql.sqltypes.AutoString(length=64),
            nullable=True,
        ),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("asset_class", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("side", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("order_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("time_in_force", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("order_class", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("qty", MONEY, nullable=True),
        sa.Column("notional", MONEY, nullable=True),
        sa.Column("limit_price", MONEY, nullable=True),
        sa.Column("stop_price", MONEY, nullable=True),
        sa.Column("trail_price", MONEY, nullable=True),
        sa.Column("trail_percent", MONEY, nullable=True),
        sa.Column("extended_hours", sa.Boolean(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("filled_qty", MONEY, nullable=False),
        sa.Column(
            "filled_avg_price",
            MONEY,
            nullable=True,
        ),
        sa.Column("reject_reason", sa.Text(), nullable=True),
        sa.Column("submitted_at", UTC_DATETIME, nullable=True),
        sa.Column("filled_at", UTC_DATETIME, nullable=True),
        sa.Column("canceled_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["broker_connections.id"],
            name=op.f("fk_orders_connection_id_broker_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_order_id"],
            ["orders.id"],
            name=op.f("fk_orders_parent_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_orders_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("user_id", "client_order_id", name=op.f("uq_orders_user_id_client_order_id")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_broker_order_id"), ["broker_order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_connection_id"), ["connection_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_parent_order_id"), ["parent_order_id"], unique=False)
        batch_op.create_index("ix_orders_user_created", ["user_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_orders_user_status", ["user_id", "status"], unique=False)

    op.create_table(
        "order_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("execution_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("qty", MONEY, nullable=True),
        sa.Column("price", MONEY, nullable=True),
        sa.Column("filled_qty", MONEY, nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("occurred_at", UTC_DATETIME, nullable=False),
        sa.Column("recorded_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_events_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
        sa.UniqueConstraint(
            "order_id",
            "execution_id",
            name=op.f("uq_order_events_order_id_execution_id"),
        ),
    )
    with op.batch_alter_table("order_events", schema=None) as batch_op:
        batch_op.create_index("ix_order_events_order", ["order_id", "id"], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping an index first fails on MariaDB when a
    # foreign key still needs it. Children go before parents.
    for table in ("order_events", "orders", "refresh_tokens", "broker_connections", "audit_events", "users"):
        op.drop_table(table)
